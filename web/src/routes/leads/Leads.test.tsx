import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { createMemoryRouter, RouterProvider } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { LeadRead } from "./api";
import Leads from "./Leads";

function lead(n: number): LeadRead {
  return {
    id: `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`,
    email: `lead${String(n)}@example.com`,
    phone: null,
    first_name: null,
    last_name: null,
    company: null,
    title: null,
    timezone: null,
    custom_fields: {},
    consent_email_at: null,
    consent_sms_at: null,
    consent_voice_at: null,
    consent_source: null,
    consent_sms_source: null,
    consent_voice_source: null,
    status: "active",
    import_id: null,
    created_at: "2026-01-01T00:00:00Z",
    updated_at: "2026-01-01T00:00:00Z",
    erased_at: null,
  };
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

/** A stand-in for the server: pages of 2 leads out of 5, by cursor; "q=bad" is refused naming the field. */
function server() {
  const seen: URL[] = [];
  const fetch = vi.fn((request: Request) => {
    const url = new URL(request.url);
    seen.push(url);
    if (url.searchParams.get("q") === "bad") {
      return Promise.resolve(
        json(422, {
          type: "about:blank",
          title: "Invalid request",
          status: 422,
          detail: "One or more fields are invalid.",
          errors: [{ field: "q", message: "at most 200 characters", source: "query" }],
        }),
      );
    }
    const start = Number(url.searchParams.get("cursor") ?? "0");
    const items = [0, 1, 2, 3, 4].slice(start, start + 2).map(lead);
    return Promise.resolve(json(200, { items, next_cursor: start + 2 < 5 ? String(start + 2) : null }));
  });
  return { fetch, seen };
}

function renderLeads(path = "/leads") {
  const router = createMemoryRouter([{ path: "/leads", Component: Leads }], { initialEntries: [path] });
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <RouterProvider router={router} />
    </QueryClientProvider>,
  );
  return router;
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("Leads", () => {
  it("fetches one page at a time by cursor, forward and back", async () => {
    const { fetch, seen } = server();
    vi.stubGlobal("fetch", fetch);
    renderLeads();
    const user = userEvent.setup();
    expect(await screen.findByRole("link", { name: "lead0@example.com" })).toBeVisible();
    expect(seen[0]?.searchParams.get("limit")).toBe("100");
    expect(seen[0]?.searchParams.has("cursor")).toBe(false);
    await user.click(screen.getByRole("button", { name: "Next page" }));
    expect(await screen.findByRole("link", { name: "lead2@example.com" })).toBeVisible();
    expect(seen.at(-1)?.searchParams.get("cursor")).toBe("2");
    await user.click(screen.getByRole("button", { name: "Next page" }));
    expect(await screen.findByRole("link", { name: "lead4@example.com" })).toBeVisible();
    expect(screen.getByText(/Page 3: 1 lead$/)).toBeVisible();
    expect(screen.getByRole("button", { name: "Next page" })).toBeDisabled();
    await user.click(screen.getByRole("button", { name: "Previous page" }));
    expect(await screen.findByRole("link", { name: "lead2@example.com" })).toBeVisible();
    expect(within(screen.getByRole("table", { name: "Leads" })).getAllByRole("row")).toHaveLength(3);
  });

  it("searches from the first page, keeps the search in the address, and puts a refused filter's error under it", async () => {
    const { fetch, seen } = server();
    vi.stubGlobal("fetch", fetch);
    const router = renderLeads();
    const user = userEvent.setup();
    await screen.findByRole("link", { name: "lead0@example.com" });
    await user.click(screen.getByRole("button", { name: "Next page" }));
    await screen.findByRole("link", { name: "lead2@example.com" });
    await user.type(screen.getByRole("searchbox", { name: "Search" }), "ada{Enter}");
    await screen.findByRole("link", { name: "lead0@example.com" });
    expect(router.state.location.search).toBe("?q=ada");
    expect(seen.at(-1)?.searchParams.get("q")).toBe("ada");
    expect(seen.at(-1)?.searchParams.has("cursor")).toBe(false);
    await user.clear(screen.getByRole("searchbox", { name: "Search" }));
    await user.type(screen.getByRole("searchbox", { name: "Search" }), "bad{Enter}");
    const search = screen.getByRole("searchbox", { name: "Search" });
    expect(await screen.findByText("at most 200 characters")).toBeVisible();
    expect(search).toHaveAttribute("aria-invalid", "true");
  });
});
