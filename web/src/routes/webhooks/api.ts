/** The API calls of the webhook screens: endpoints and their delivery log. */
import { api, unwrap } from "../../api/client";
import type { components } from "../../api/schema";

export type WebhookRead = components["schemas"]["WebhookRead"];
export type WebhookCreate = components["schemas"]["WebhookCreate"];
export type WebhookCreated = components["schemas"]["WebhookCreated"];
export type DeliveryRead = components["schemas"]["DeliveryRead"];
export type EventType = WebhookCreate["event_types"][number];

export const EVENT_TYPES: EventType[] = ["sent", "delivered", "replied", "bounced", "unsubscribed", "failed"];

export const webhookKeys = {
  all: ["webhooks"] as const,
  webhook: (id: string) => ["webhooks", id] as const,
  deliveries: (id: string) => ["webhooks", id, "deliveries"] as const,
};

const path = (id: string) => ({ params: { path: { webhook_id: id } } });

export const listWebhooks = () => unwrap(api.GET("/api/webhooks", { params: { query: { limit: 100 } } }));
export const getWebhook = (id: string) => unwrap(api.GET("/api/webhooks/{webhook_id}", path(id)));
export const createWebhook = (body: WebhookCreate) => unwrap(api.POST("/api/webhooks", { body }));
export const deleteWebhook = (id: string) => unwrap(api.DELETE("/api/webhooks/{webhook_id}", path(id)));
export const listDeliveries = (id: string) =>
  unwrap(api.GET("/api/webhooks/{webhook_id}/deliveries", { params: { path: { webhook_id: id }, query: { limit: 100 } } }));
