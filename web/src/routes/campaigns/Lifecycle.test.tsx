import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { createMemoryRouter, RouterProvider } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";
import { sessionStore, type Session } from "../../auth/session";
import type { CampaignRead } from "./api";
import { Lifecycle } from "./Lifecycle";

const campaign = {
  id: "c1",
  brand_id: "b1",
  name: "First",
  status: "draft",
  timezone: "UTC",
} as CampaignRead;

function signIn(role: Session["role"]) {
  sessionStore.set({
    accessToken: "t",
    expiresAt: Date.now() + 15 * 60_000, // far enough that no renewal starts
    obtainedAt: Date.now(),
    role,
    user: { id: "u", email: "ada@acme.example", name: "Ada" } as unknown as Session["user"],
    organization: { id: "o", name: "Acme" },
  });
}

function renderLifecycle() {
  const router = createMemoryRouter([{ path: "/", element: <Lifecycle campaign={campaign} /> }]);
  render(
    <QueryClientProvider client={new QueryClient()}>
      <RouterProvider router={router} />
    </QueryClientProvider>,
  );
}

afterEach(() => {
  sessionStore.clear();
  vi.unstubAllGlobals();
});

describe("Lifecycle", () => {
  it("offers no launch to a viewer or a member (launching takes an admin)", () => {
    for (const role of ["viewer", "member"] as const) {
      signIn(role);
      renderLifecycle();
      expect(screen.queryByRole("button", { name: "Launch campaign" })).toBeNull();
      expect(screen.getByText("An admin or owner launches the campaign.")).toBeVisible();
      sessionStore.clear();
      document.body.innerHTML = "";
    }
  });

  it("lists every readiness gap of a refused launch", async () => {
    signIn("owner");
    const fetch = vi.fn(() =>
      Promise.resolve(
        new Response(
          JSON.stringify({
            type: "https://tidewater.dev/problems/not-ready-to-launch",
            title: "Not ready to launch",
            status: 422,
            detail: "The campaign cannot launch yet: …",
            code: "NotReadyToLaunch",
            errors: [
              { field: "steps[1].body_template", message: "an email step needs a subject and a body" },
              { field: "brand.email", message: "a verified email sender" },
            ],
          }),
          { status: 422, headers: { "content-type": "application/problem+json" } },
        ),
      ),
    );
    vi.stubGlobal("fetch", fetch);
    renderLifecycle();
    await userEvent.setup().click(screen.getByRole("button", { name: "Launch campaign" }));
    const gaps = await screen.findByRole("list", { name: "What the launch still needs" });
    expect(gaps).toHaveTextContent("steps[1].body_template: an email step needs a subject and a body");
    expect(gaps).toHaveTextContent("brand.email: a verified email sender (brand checklist)");
    const request = (fetch.mock.calls[0] as unknown as [Request])[0];
    expect(new URL(request.url).pathname).toBe("/api/campaigns/c1/launch");
    expect(request.headers.get("authorization")).toBe("Bearer t");
  });
});
