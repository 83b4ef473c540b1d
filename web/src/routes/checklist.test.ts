import { describe, expect, it } from "vitest";
import type { Readiness } from "../api/queries";
import { emailChecklist } from "./checklist";
import { safeNext } from "./next";

function readiness(missing: string[]): Readiness {
  return {
    brand_id: "b1",
    ready: missing.length === 0,
    checked_at: "2026-01-01T00:00:00Z",
    channels: { email: { ready: missing.length === 0, missing: missing.map((code) => ({ code, message: code })), warnings: [] } },
  };
}

const done = (items: ReturnType<typeof emailChecklist>) => items.filter((i) => i.done).map((i) => i.id);

describe("emailChecklist", () => {
  it("has nothing done before the first brand", () => {
    expect(done(emailChecklist(null, undefined))).toEqual([]);
  });

  it("follows the readiness gaps of the email channel", () => {
    expect(done(emailChecklist("b1", readiness(["postal_address", "opt_out_email", "email_sender"])))).toEqual(["brand"]);
    expect(done(emailChecklist("b1", readiness(["verified_email_sender"])))).toEqual([
      "brand",
      "postal_address",
      "opt_out_email",
      "email_sender",
    ]);
    expect(done(emailChecklist("b1", readiness([])))).toHaveLength(5);
  });

  it("links the sender steps to the brand's senders", () => {
    const sender = emailChecklist("b1", readiness(["email_sender"])).find((i) => i.id === "email_sender");
    expect(sender?.to).toBe("/brands/b1/senders");
  });
});

describe("safeNext", () => {
  it("keeps paths of the app and refuses anything else", () => {
    expect(safeNext("/brands?x=1")).toBe("/brands?x=1");
    for (const bad of [null, "", "https://evil.example", "//evil.example", "/\\evil", "/api/brands", "/ops/rq"]) {
      expect(safeNext(bad)).toBe("/");
    }
  });
});
