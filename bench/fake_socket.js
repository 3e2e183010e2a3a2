// A scripted WebSocket for bench/console.py: on subscribe it streams TOKENS token frames, 10 every 20 ms.
(() => {
  const TOKENS = __TOKENS__, PER_TICK = 10, TICK_MS = 20;
  const WORDS = 'near infrared light passes through the scalp and skull and is absorbed by haemoglobin [1]'.split(' ');
  window.__longTasks = [];
  new PerformanceObserver((list) => list.getEntries().forEach((e) => window.__longTasks.push([e.startTime, e.duration])))
    .observe({ type: 'longtask', buffered: true });
  window.__frames = [];
  const loop = (t) => { window.__frames.push(t); requestAnimationFrame(loop); };
  requestAnimationFrame(loop);
  class ScriptedSocket {
    constructor() { this.readyState = 0; setTimeout(() => { this.readyState = 1; this.onopen && this.onopen({}); }, 5); }
    close() { this.readyState = 3; }
    send(data) { const frame = JSON.parse(data); if (frame.action === 'subscribe') this.stream(frame.execution_id); }
    emit(frame) { this.onmessage && this.onmessage({ data: JSON.stringify(frame) }); }
    stream(id) {
      let seq = 0, sent = 0, answer = '';
      const now = () => new Date().toISOString();
      const event = (event_type, content) => this.emit({ type: 'agent_event', execution_id: id, seq: ++seq, event_type, content, timestamp: now() });
      window.__stream = { start: performance.now() };
      event('started', {});
      event('progress', { stage: 'generating', message: 'Writing the answer' });
      const timer = setInterval(() => {
        for (let i = 0; i < PER_TICK && sent < TOKENS; i += 1, sent += 1) {
          const text = WORDS[sent % WORDS.length] + ' ';
          answer += text;
          event('token', { text });
        }
        if (sent < TOKENS) return;
        clearInterval(timer);
        this.emit({ type: 'execution_completed', execution_id: id, seq: ++seq,
          output_data: { answer, sources: [{ source: 'fnirs.md', chunk_id: 'fnirs.md:0', score: 0.81, text: 'Near-infrared light…' }] } });
        window.__stream.end = performance.now();
      }, TICK_MS);
    }
  }
  window.WebSocket = ScriptedSocket;
})();
