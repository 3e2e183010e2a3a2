// How a document's state reads: its status and failure in words, its indexing progress, and
// whether it is still moving (so its collection page keeps polling).

import type { CollectionDocument, DocumentStatus } from '@/api/types'

const STATUS_WORDS: Record<DocumentStatus, string> = {
  awaiting_upload: 'uploading',
  queued: 'queued',
  extracting: 'extracting text',
  embedding: 'embedding',
  indexed: 'indexed',
  failed: 'failed',
  deleting: 'deleting',
}

const SETTLED: ReadonlySet<DocumentStatus> = new Set(['indexed', 'failed'])

/** The failure in words: the contract's own sentence for its code, as the API sends it. */
export function failureInWords(error: CollectionDocument['error']): string {
  if (!error) return ''
  return error.message || `Indexing failed (${error.code}).`
}

export function statusInWords(status: DocumentStatus): string {
  return STATUS_WORDS[status] ?? status
}

/** Whether the document may still change on its own (indexing, or being deleted). */
export function isMoving(document: CollectionDocument): boolean {
  return !SETTLED.has(document.status)
}

/** Indexing progress from 0 to 1, or null before the number of chunks is known. */
export function progressOf(document: CollectionDocument): number | null {
  if (document.status === 'indexed') return 1
  if (document.chunks_total <= 0) return null
  return Math.min(1, document.chunks_done / document.chunks_total)
}

/** The file's sha256 as hex, so the API can skip bytes it already holds. */
export async function sha256Hex(file: Blob): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', await file.arrayBuffer())
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, '0')).join('')
}

export function formatBytes(size: number): string {
  if (size < 1024) return `${size} B`
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KiB`
  return `${(size / 1024 / 1024).toFixed(1)} MiB`
}
