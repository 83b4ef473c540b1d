/**
 * The live view's state: message counts by status and the latest events. A snapshot (the ledger,
 * the truth) replaces the counts when the ledger's picture changed; the gateway re-sends its last
 * picture every second between ledger reads, and such a repeat keeps the counts live events moved
 * since. A live event moves one message into its new state at once, so the view counts sends as
 * they happen.
 */
import type { LiveEvent, StreamItem } from "./stream";

export const LATEST = 20;

export interface LiveState {
  counts: Record<string, number>;
  latest: LiveEvent[];
  /** The ledger's counts in the last snapshot (a repeat of them is not news). */
  ledger: Record<string, number> | null;
  snapshotAt: number | null;
  sentLastMinute: number;
}

export const initialLive: LiveState = { counts: {}, latest: [], ledger: null, snapshotAt: null, sentLastMinute: 0 };

/** The message status each live event kind leaves a message in. */
const STATUS_OF: Record<string, string> = {
  sent: "sent",
  failed: "failed",
  held: "held",
  skipped: "skipped",
  unknown: "unknown",
};

export function liveReducer(state: LiveState, item: StreamItem): LiveState {
  if (item.type === "snapshot") {
    const { snapshot } = item;
    if (state.snapshotAt !== null && snapshot.at < state.snapshotAt) return state; // an older picture
    const repeat = state.ledger !== null && sameCounts(state.ledger, snapshot.messages);
    return {
      ...state,
      counts: repeat ? state.counts : { ...snapshot.messages },
      ledger: { ...snapshot.messages },
      snapshotAt: snapshot.at,
      sentLastMinute: snapshot.sent["1m"],
    };
  }
  const { event } = item;
  if (state.latest.some((e) => e.id === event.id)) return state; // a repeated event counts once
  const latest = [event, ...state.latest].slice(0, LATEST);
  const status = STATUS_OF[event.kind];
  if (!status) return { ...state, latest };
  const counts = { ...state.counts, [status]: (state.counts[status] ?? 0) + 1 };
  // The message came from a state before it (queued or sending): take it from there.
  for (const before of ["sending", "queued"]) {
    if ((counts[before] ?? 0) > 0) {
      counts[before] = (counts[before] ?? 0) - 1;
      break;
    }
  }
  return { ...state, counts, latest };
}

function sameCounts(a: Record<string, number>, b: Record<string, number>): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) if ((a[key] ?? 0) !== (b[key] ?? 0)) return false;
  return true;
}

/** The total of every status. */
export function total(counts: Record<string, number>): number {
  return Object.values(counts).reduce((sum, n) => sum + n, 0);
}
