import { describe, expect, it } from "vitest";
import { initialLive, LATEST, liveReducer, total, type LiveState } from "./counts";
import type { LiveEvent, StreamItem } from "./stream";

const snapshot = (at: number, messages: Record<string, number>): StreamItem => ({
  type: "snapshot",
  snapshot: { at, campaign_id: "c", messages, held_reasons: {}, sent: { "1m": messages.sent ?? 0, "5m": 0, "15m": 0 } },
});
const event = (id: string, kind: string): StreamItem => ({
  type: "event",
  event: { id, kind, campaign_id: "c", at: 1, message_id: `m${id}` } satisfies LiveEvent,
});
const run = (items: StreamItem[], from: LiveState = initialLive) => items.reduce(liveReducer, from);

describe("liveReducer", () => {
  it("takes a snapshot's counts, then moves a queued message to sent on a live event", () => {
    const state = run([snapshot(10, { queued: 2 }), event("1", "sent")]);
    expect(state.counts).toEqual({ queued: 1, sent: 1 });
    expect(state.latest.map((e) => e.id)).toEqual(["1"]);
    expect(total(state.counts)).toBe(2);
  });

  it("counts a repeated event once", () => {
    const state = run([snapshot(10, { queued: 2 }), event("1", "sent"), event("1", "sent")]);
    expect(state.counts.sent).toBe(1);
  });

  it("keeps live counts through a repeated ledger picture, and takes a new one", () => {
    let state = run([snapshot(10, { queued: 2 }), event("1", "sent"), snapshot(11, { queued: 2 })]);
    expect(state.counts).toEqual({ queued: 1, sent: 1 });
    state = run([snapshot(15, { sent: 2 })], state);
    expect(state.counts).toEqual({ sent: 2 });
    state = run([snapshot(12, { queued: 9 })], state); // older than the last: ignored
    expect(state.counts).toEqual({ sent: 2 });
  });

  it("lists events of other kinds without counting them, newest first, at most LATEST", () => {
    let state = run([event("r", "replied")]);
    expect(state.counts).toEqual({});
    for (let i = 0; i < LATEST + 5; i++) state = liveReducer(state, event(String(i), "sent"));
    expect(state.latest).toHaveLength(LATEST);
    expect(state.latest[0]?.id).toBe(String(LATEST + 4));
    expect(state.counts.sent).toBe(LATEST + 5);
  });
});
