import { afterEach, describe, expect, it } from "vitest";
import { sessionFrom, sessionStore, type SessionRead } from "./session";

const answer: SessionRead = {
  access_token: "access",
  token_type: "bearer",
  expires_in: 900,
  refresh_token: "refresh",
  refresh_expires_in: 86400,
  user: { id: "u1", email: "ada@acme.example", name: "Ada", operator: false },
  organization: { id: "o1", name: "Acme" },
  role: "owner",
};

afterEach(() => {
  sessionStore.clear();
});

describe("sessionStore", () => {
  it("keeps the token in memory only and tells subscribers", () => {
    let calls = 0;
    const stop = sessionStore.subscribe(() => (calls += 1));
    sessionStore.set(sessionFrom(answer, 1_000));
    expect(sessionStore.accessToken(1_000)).toBe("access");
    expect(calls).toBe(1);
    expect(localStorage.length).toBe(0);
    expect(sessionStorage.length).toBe(0);
    stop();
  });

  it("gives no token once it has expired, and restore() forgets it", async () => {
    sessionStore.set(sessionFrom(answer, 0));
    expect(sessionStore.accessToken(900_001)).toBeNull();
    expect(await sessionStore.restore(900_001)).toBeNull();
    expect(sessionStore.get()).toBeNull();
  });
});
