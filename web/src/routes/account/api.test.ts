import { describe, expect, it } from "vitest";
import { atLeast, describeSecret, grantable, inviteLink, inviteToken } from "./api";

describe("account helpers", () => {
  it("ranks roles and never grants above one's own", () => {
    expect(atLeast("admin", "member")).toBe(true);
    expect(atLeast("member", "admin")).toBe(false);
    expect(grantable("admin")).toEqual(["viewer", "member", "admin"]);
    expect(grantable("viewer")).toEqual(["viewer"]);
  });

  it("shows a stored secret only as set and its last four", () => {
    expect(describeSecret(null)).toBe("Not set");
    expect(describeSecret({ set: false })).toBe("Not set");
    expect(describeSecret({ set: true, last4: "9f3a" })).toBe("Set, ending in 9f3a");
  });

  it("puts the invite token in the fragment and reads it back", () => {
    const link = inviteLink("twi_abc+/=", "https://app.example");
    expect(link).toBe("https://app.example/invite#twi_abc%2B%2F%3D");
    expect(inviteToken(new URL(link).hash, "")).toBe("twi_abc+/=");
    expect(inviteToken("", "?token=twi_x")).toBe("twi_x");
    expect(inviteToken("", "")).toBe("");
  });
});
