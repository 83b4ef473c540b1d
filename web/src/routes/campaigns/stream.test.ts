import { describe, expect, it } from "vitest";
import { SseParser, toStreamItem } from "./stream";

describe("SseParser", () => {
  it("yields events split across chunks, skipping comments", () => {
    const parser = new SseParser();
    expect(parser.feed(": connected\n\nevent: snap")).toEqual([]);
    expect(parser.feed('shot\ndata: {"a":')).toEqual([]);
    expect(parser.feed("1}\n\nevent: event\r\ndata: x\r\n\r\n")).toEqual([
      { event: "snapshot", data: '{"a":1}' },
      { event: "event", data: "x" },
    ]);
  });

  it("joins data lines, defaults the name to message and waits for a split CRLF", () => {
    const parser = new SseParser();
    expect(parser.feed("data: one\ndata:two\r")).toEqual([]);
    expect(parser.feed("\n\r\n")).toEqual([{ event: "message", data: "one\ntwo" }]);
  });

  it("drops an event with no data", () => {
    const parser = new SseParser();
    expect(parser.feed("event: snapshot\n\ndata: y\n\n")).toEqual([{ event: "message", data: "y" }]);
  });
});

describe("toStreamItem", () => {
  it("reads a campaign snapshot", () => {
    const item = toStreamItem({
      event: "snapshot",
      data: JSON.stringify({
        at: 12.5,
        campaign_id: "c",
        messages: { sent: 2, queued: 1, bad: "x" },
        held_reasons: {},
        sent: { "1m": 2, "5m": 2, "15m": 2 },
      }),
    });
    expect(item).toEqual({
      type: "snapshot",
      snapshot: {
        at: 12.5,
        campaign_id: "c",
        messages: { sent: 2, queued: 1 },
        held_reasons: {},
        sent: { "1m": 2, "5m": 2, "15m": 2 },
      },
    });
  });

  it("reads a live event and refuses bad JSON or unknown names", () => {
    const data = JSON.stringify({ id: "1-0", kind: "sent", campaign_id: "c", at: 3, message_id: "m", channel: "email" });
    expect(toStreamItem({ event: "event", data })).toEqual({
      type: "event",
      event: { id: "1-0", kind: "sent", campaign_id: "c", at: 3, message_id: "m", channel: "email" },
    });
    expect(toStreamItem({ event: "event", data: "{" })).toBeNull();
    expect(toStreamItem({ event: "other", data })).toBeNull();
    expect(toStreamItem({ event: "event", data: "[]" })).toBeNull();
  });
});
