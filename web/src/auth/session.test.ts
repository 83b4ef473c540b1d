import { afterEach, describe, expect, it, vi } from "vitest";
import { csrfToken, fresh, sessionFrom, sessionStore, type SessionRead } from "./session";

const answer: SessionRead = {
  access_token: "access",
  token_type: "bearer",
  expires_in: 900,
  refresh_token: null,
  refresh_expires_in: 86400,
  user: { id: "u1", email: "ada@acme.example", name: "Ada", operator: false },
  organization: { id: "o1", name: "Acme" },
  role: "owner",
};

afterEach(() => {
  sessionStore.clear();
  vi.unstubAllGlobals();
  document.cookie = "tidewater_csrf=; max-age=0; path=/";
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

  it("reads the CSRF cookie among others", () => {
    expect(csrfToken("a=1; tidewater_csrf=x%2By=z; b=2")).toBe("x+y=z");
    expect(csrfToken("a=1")).toBe("");
  });

  it("restores from the refresh cookie once, with the CSRF header, however many ask at once", async () => {
    document.cookie = "tidewater_csrf=csrf-value; path=/";
    const calls: { url: string; headers: Headers }[] = [];
    vi.stubGlobal("fetch", (url: string, init?: RequestInit) => {
      calls.push({ url, headers: new Headers(init?.headers) });
      const body =
        url === "/api/auth/refresh"
          ? { access_token: "fresh", token_type: "bearer", expires_in: 900, refresh_token: null, refresh_expires_in: 86400 }
          : { user: answer.user, organization: answer.organization, role: "owner", operator: false, scopes: [], api_key_id: null, memberships: [] };
      return Promise.resolve(new Response(JSON.stringify(body), { status: 200 }));
    });
    const [first, second] = await Promise.all([sessionStore.restore(), sessionStore.restore()]);
    expect(first?.accessToken).toBe("fresh");
    expect(second).toBe(first);
    expect(calls.map((call) => call.url)).toEqual(["/api/auth/refresh", "/api/auth/me"]);
    expect(calls[0]?.headers.get("x-csrf-token")).toBe("csrf-value");
    expect(calls[0]?.headers.get("x-tidewater-client")).toBe("web");
    expect(sessionStore.get()?.organization.name).toBe("Acme");
    expect(localStorage.length + sessionStorage.length).toBe(0);
  });

  it("without a refresh cookie, restore() asks nothing and stays signed out", async () => {
    const fetch = vi.fn();
    vi.stubGlobal("fetch", fetch);
    expect(await sessionStore.restore()).toBeNull();
    expect(fetch).not.toHaveBeenCalled();
  });

  it("renews a minute before expiry, or after three quarters of a short lifetime", () => {
    const long = sessionFrom(answer, 0); // 900 s
    expect(fresh(long, 839_000)).toBe(true);
    expect(fresh(long, 841_000)).toBe(false);
    const short = sessionFrom({ ...answer, expires_in: 60 }, 0);
    expect(fresh(short, 44_000)).toBe(true);
    expect(fresh(short, 46_000)).toBe(false);
    expect(fresh(null)).toBe(false);
  });
});
