import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { createMemoryRouter, RouterProvider } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";
import SignIn from "./SignIn";

function answer(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/problem+json" } });
}

function renderSignIn(entry = "/signin") {
  const router = createMemoryRouter([{ path: "/signin", Component: SignIn }, { path: "/", element: <p>home</p> }], {
    initialEntries: [entry],
  });
  render(
    <QueryClientProvider client={new QueryClient()}>
      <RouterProvider router={router} />
    </QueryClientProvider>,
  );
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("SignIn", () => {
  it("shows the server's field error next to the field it names, and the problem above the form", async () => {
    const fetch = vi.fn(() =>
      Promise.resolve(
        answer(422, {
          type: "https://tidewater.dev/problems/invalid",
          title: "Invalid request",
          status: 422,
          detail: "One or more fields are invalid.",
          code: "Invalid",
          errors: [{ field: "password", message: "String should have at least 1 character", source: "body" }],
        }),
      ),
    );
    vi.stubGlobal("fetch", fetch);
    renderSignIn();
    const user = userEvent.setup();
    await user.type(screen.getByLabelText("Email"), "ada@acme.example");
    await user.click(screen.getByRole("button", { name: "Sign in" }));

    const password = screen.getByLabelText("Password");
    expect(await screen.findByText("String should have at least 1 character")).toBeVisible();
    expect(password).toHaveAttribute("aria-invalid", "true");
    expect(password).toHaveAccessibleDescription("String should have at least 1 character");
    expect(screen.getByLabelText("Email")).not.toHaveAttribute("aria-invalid");
    expect(screen.getByText("One or more fields are invalid.")).toBeVisible();
    const request = (fetch.mock.calls as unknown as [Request][])
      .map(([r]) => r)
      .find((r) => new URL(r.url).pathname === "/api/auth/login");
    if (!request) throw new Error("no sign-in request");
    expect(new URL(request.url).pathname).toBe("/api/auth/login");
    expect(await request.json()).toEqual({ email: "ada@acme.example", password: "" });
  });

  it("shows a refusal without field errors as a form-level message", async () => {
    vi.stubGlobal("fetch", () =>
      Promise.resolve(
        answer(401, {
          type: "https://tidewater.dev/problems/unauthorized",
          title: "Unauthorized",
          status: 401,
          detail: "Invalid email or password.",
          code: "Unauthorized",
        }),
      ),
    );
    renderSignIn();
    const user = userEvent.setup();
    await user.type(screen.getByLabelText("Email"), "ada@acme.example");
    await user.type(screen.getByLabelText("Password"), "wrong password here");
    await user.keyboard("{Enter}");
    expect(await screen.findByRole("alert")).toHaveTextContent("Invalid email or password.");
    expect(screen.getByLabelText("Password")).not.toHaveAttribute("aria-invalid");
  });

  it("offers the provider's link when single sign-on is on, keeping where to land", async () => {
    vi.stubGlobal("fetch", (request: Request) =>
      Promise.resolve(
        new URL(request.url).pathname === "/api/auth/sso"
          ? new Response(JSON.stringify({ enabled: true, name: "Google" }), {
              status: 200,
              headers: { "content-type": "application/json" },
            })
          : answer(500, {}),
      ),
    );
    renderSignIn("/signin?next=%2Fcampaigns");
    const link = await screen.findByRole("link", { name: "Sign in with Google" });
    expect(link).toHaveAttribute("href", "/api/auth/sso/start?next=%2Fcampaigns");
  });

  it("shows no provider link when single sign-on is off, and a refused attempt as a readable message", async () => {
    const fetch = vi.fn(() =>
      Promise.resolve(
        new Response(JSON.stringify({ enabled: false, name: null }), {
          status: 200,
          headers: { "content-type": "application/json" },
        }),
      ),
    );
    vi.stubGlobal("fetch", fetch);
    renderSignIn("/signin?sso_error=not_invited");
    expect(await screen.findByRole("alert")).toHaveTextContent("Ask an admin of your team to invite you.");
    await waitFor(() => {
      expect(fetch).toHaveBeenCalled();
    });
    expect(screen.queryByRole("link", { name: /Sign in with/ })).toBeNull();
  });
});
