import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { RouterProvider } from "react-router";
import { ProblemError } from "./api/problem";
import { sessionStore } from "./auth/session";
import { createRouter } from "./router";
import "./styles.css";

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      staleTime: 10_000,
      // A problem the caller caused (4xx) will not go away by asking again.
      retry: (failures, error) => !(error instanceof ProblemError && error.status < 500) && failures < 2,
    },
  },
});

// Another organization or user (here or in another tab): nothing cached belongs to them.
let organization = sessionStore.get()?.organization.id;
sessionStore.subscribe(() => {
  const next = sessionStore.get()?.organization.id;
  if (next !== organization) {
    organization = next;
    queryClient.clear();
  }
});

const root = document.getElementById("root");
if (!root) throw new Error("index.html has no #root");
// A reload or a new tab: the refresh cookie (if any) gives this tab its access token before the first screen.
const app = createRoot(root);
void sessionStore
  .restore()
  .catch(() => null)
  .then(() => {
    app.render(
      <StrictMode>
        <QueryClientProvider client={queryClient}>
          <RouterProvider router={createRouter()} />
        </QueryClientProvider>
      </StrictMode>,
    );
  });
