import { fileURLToPath, URL } from 'node:url'
import { defineConfig } from 'vitest/config'
import vue from '@vitejs/plugin-vue'

// Served under /console/ by the local gateway and by CloudFront alike.
export default defineConfig({
  base: '/console/',
  plugins: [vue()],
  resolve: {
    alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) },
  },
  // `npm run dev`: the API and WebSocket of the local gateway, proxied so they stay same-origin.
  server: {
    proxy: Object.fromEntries(
      ['/agents', '/executions', '/collections', '/openapi.json', '/health', '/ws'].map((path) => [
        path,
        { target: process.env.DYNAVERA_API_URL ?? 'http://127.0.0.1:8000', ws: path === '/ws' },
      ]),
    ),
  },
  build: {
    target: 'es2022',
    reportCompressedSize: true,
  },
  test: {
    environment: 'node',
    include: ['tests/unit/**/*.test.ts'],
  },
})
