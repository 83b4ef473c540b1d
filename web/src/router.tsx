import type { ComponentType } from "react";
import { createBrowserRouter, type RouteObject } from "react-router";
import RouteError from "./routes/RouteError";

/** A route whose screen is its own chunk, fetched on first visit (keeps the first load small). */
function page(load: () => Promise<{ default: ComponentType }>): Pick<RouteObject, "lazy"> {
  return { lazy: async () => ({ Component: (await load()).default }) };
}

export const routes: RouteObject[] = [
  {
    errorElement: <RouteError />,
    children: [
      { path: "/signin", ...page(() => import("./routes/SignIn")) },
      { path: "/signup", ...page(() => import("./routes/SignUp")) },
      { path: "/invite", ...page(() => import("./routes/account/AcceptInvite")) },
      {
        path: "/",
        ...page(() => import("./routes/Shell")),
        children: [
          { index: true, ...page(() => import("./routes/Onboarding")) },
          { path: "brands", ...page(() => import("./routes/Brands")) },
          { path: "brands/:brandId/senders", ...page(() => import("./routes/Senders")) },
          { path: "leads", ...page(() => import("./routes/leads/Leads")) },
          { path: "leads/import", ...page(() => import("./routes/leads/Import")) },
          { path: "leads/imports/:importId", ...page(() => import("./routes/leads/ImportProgress")) },
          { path: "leads/:leadId", ...page(() => import("./routes/leads/Lead")) },
          { path: "suppressions", ...page(() => import("./routes/leads/Suppressions")) },
          { path: "campaigns", ...page(() => import("./routes/campaigns/Campaigns")) },
          { path: "campaigns/:campaignId", ...page(() => import("./routes/campaigns/Campaign")) },
          { path: "campaigns/:campaignId/live", ...page(() => import("./routes/campaigns/Live")) },
          { path: "messages/:messageId", ...page(() => import("./routes/campaigns/Message")) },
          { path: "webhooks", ...page(() => import("./routes/webhooks/Webhooks")) },
          { path: "webhooks/:webhookId", ...page(() => import("./routes/webhooks/Deliveries")) },
          { path: "account", ...page(() => import("./routes/account/Account")) },
          { path: "account/members", ...page(() => import("./routes/account/Members")) },
          { path: "account/api-keys", ...page(() => import("./routes/account/ApiKeys")) },
          { path: "account/providers", ...page(() => import("./routes/account/Providers")) },
          { path: "*", ...page(() => import("./routes/NotFound")) },
        ],
      },
    ],
  },
];

export function createRouter() {
  return createBrowserRouter(routes);
}
