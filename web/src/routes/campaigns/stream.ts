/**
 * The campaign's live stream (GET /api/campaigns/{id}/stream, server-sent events). The stream
 * wants the bearer token in an Authorization header, which EventSource cannot send, so it is read
 * with fetch() and a streaming body, and parsed here.
 */

export interface SseMessage {
  event: string;
  data: string;
  id?: string;
}

/** A chunk-by-chunk parser of text/event-stream: feed text, get the complete events so far. */
export class SseParser {
  private buffer = "";
  private event = "";
  private data: string[] = [];
  private id: string | undefined;

  feed(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const out: SseMessage[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) break;
      // A lone \r at the very end may be the first half of \r\n: wait for more.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const message = this.line(line);
      if (message) out.push(message);
    }
    return out;
  }

  private line(line: string): SseMessage | null {
    if (line === "") {
      if (this.data.length === 0) {
        this.event = "";
        return null;
      }
      const message: SseMessage = { event: this.event || "message", data: this.data.join("\n") };
      if (this.id !== undefined) message.id = this.id;
      this.event = "";
      this.data = [];
      return message;
    }
    if (line.startsWith(":")) return null; // a comment (": connected")
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id") this.id = value;
    return null;
  }
}

/** A ledger snapshot of the campaign (every few seconds): messages by status. */
export interface Snapshot {
  at: number;
  campaign_id: string;
  messages: Record<string, number>;
  held_reasons: Record<string, number>;
  sent: { "1m": number; "5m": number; "15m": number };
}

/** A live event: a message was sent, failed, held, skipped, replied or its outcome is unknown. */
export interface LiveEvent {
  id: string;
  kind: string;
  campaign_id: string;
  at: number;
  message_id?: string;
  channel?: string;
  reason?: string;
}

export type StreamItem = { type: "snapshot"; snapshot: Snapshot } | { type: "event"; event: LiveEvent };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function counts(value: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (!isRecord(value)) return out;
  for (const [key, n] of Object.entries(value)) if (typeof n === "number") out[key] = n;
  return out;
}

/** Turn one server-sent event into a snapshot or a live event; null for anything else or bad JSON. */
export function toStreamItem(message: SseMessage): StreamItem | null {
  let data: unknown;
  try {
    data = JSON.parse(message.data);
  } catch {
    return null;
  }
  if (!isRecord(data)) return null;
  if (message.event === "snapshot") {
    const sent = counts(data.sent);
    return {
      type: "snapshot",
      snapshot: {
        at: typeof data.at === "number" ? data.at : 0,
        campaign_id: typeof data.campaign_id === "string" ? data.campaign_id : "",
        messages: counts(data.messages),
        held_reasons: counts(data.held_reasons),
        sent: { "1m": sent["1m"] ?? 0, "5m": sent["5m"] ?? 0, "15m": sent["15m"] ?? 0 },
      },
    };
  }
  if (message.event === "event" && typeof data.kind === "string" && typeof data.id === "string") {
    const event: LiveEvent = {
      id: data.id,
      kind: data.kind,
      campaign_id: typeof data.campaign_id === "string" ? data.campaign_id : "",
      at: typeof data.at === "number" ? data.at : Number(data.at) || 0,
    };
    if (typeof data.message_id === "string") event.message_id = data.message_id;
    if (typeof data.channel === "string") event.channel = data.channel;
    if (typeof data.reason === "string") event.reason = data.reason;
    return { type: "event", event };
  }
  return null;
}

/**
 * Read the stream until `signal` aborts or the server ends it, handing each item to `onItem`.
 * Resolves when the stream ends; rejects with the HTTP status on a refused request.
 */
export async function readStream(
  url: string,
  token: string,
  onItem: (item: StreamItem) => void,
  signal: AbortSignal,
): Promise<void> {
  const response = await fetch(url, {
    headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
    signal,
    cache: "no-store",
  });
  if (!response.ok || !response.body) throw new Error(`The live stream answered ${String(response.status)}.`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    for (const message of parser.feed(value)) {
      const item = toStreamItem(message);
      if (item) onItem(item);
    }
  }
}
