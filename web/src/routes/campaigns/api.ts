/** The API calls of the campaign screens: campaigns, steps, schedule, enrollments, messages. */
import { api, unwrap } from "../../api/client";
import type { components } from "../../api/schema";

type S = components["schemas"];
export type CampaignRead = S["CampaignRead"];
export type CampaignCreate = S["CampaignCreate"];
export type CampaignUpdate = S["CampaignUpdate"];
export type StepRead = S["StepRead"];
export type StepCreate = S["StepCreate"];
export type StepUpdate = S["StepUpdate"];
export type VariantIn = S["VariantIn"];
export type StopRules = S["StopRules"];
export type SchedulePreview = S["SchedulePreview"];
export type LeadFilter = S["LeadFilter"];
export type EnrollResult = S["EnrollResult"];
export type MessageRead = S["MessageRead"];
export type MessageDetail = S["MessageDetail"];
export type Channel = S["Channel"];
export type DelayUnit = S["DelayUnit"];

export const campaignKeys = {
  all: ["campaigns"] as const,
  campaign: (id: string) => ["campaigns", id] as const,
  steps: (id: string) => ["campaigns", id, "steps"] as const,
  schedule: (id: string, leadId: string) => ["campaigns", id, "schedule", leadId] as const,
  enrollments: (id: string) => ["campaigns", id, "enrollments"] as const,
  messages: (id: string) => ["campaigns", id, "messages"] as const,
  message: (id: string) => ["messages", id] as const,
  leads: ["leads", "picker"] as const,
};

const path = (campaignId: string) => ({ params: { path: { campaign_id: campaignId } } });

export const listCampaigns = () => unwrap(api.GET("/api/campaigns", { params: { query: { limit: 100 } } }));
export const getCampaign = (id: string) => unwrap(api.GET("/api/campaigns/{campaign_id}", path(id)));
export const createCampaign = (body: CampaignCreate) => unwrap(api.POST("/api/campaigns", { body }));
export const updateCampaign = (id: string, body: CampaignUpdate) =>
  unwrap(api.PATCH("/api/campaigns/{campaign_id}", { ...path(id), body }));

export type Transition = "launch" | "pause" | "resume";
export function transition(id: string, action: Transition) {
  if (action === "launch") return unwrap(api.POST("/api/campaigns/{campaign_id}/launch", path(id)));
  if (action === "pause") return unwrap(api.POST("/api/campaigns/{campaign_id}/pause", path(id)));
  return unwrap(api.POST("/api/campaigns/{campaign_id}/resume", path(id)));
}

export const listSteps = (id: string) => unwrap(api.GET("/api/campaigns/{campaign_id}/steps", path(id)));
export const createStep = (id: string, body: StepCreate) =>
  unwrap(api.POST("/api/campaigns/{campaign_id}/steps", { ...path(id), body }));
export const updateStep = (id: string, stepId: string, body: StepUpdate) =>
  unwrap(
    api.PATCH("/api/campaigns/{campaign_id}/steps/{step_id}", {
      params: { path: { campaign_id: id, step_id: stepId } },
      body,
    }),
  );
export const deleteStep = (id: string, stepId: string) =>
  unwrap(
    api.DELETE("/api/campaigns/{campaign_id}/steps/{step_id}", {
      params: { path: { campaign_id: id, step_id: stepId } },
    }),
  );

export const previewSchedule = (id: string, leadId: string) =>
  unwrap(
    api.GET("/api/campaigns/{campaign_id}/schedule", {
      params: { path: { campaign_id: id }, query: leadId ? { lead_id: leadId } : {} },
    }),
  );

export const enroll = (id: string, filter: LeadFilter) =>
  unwrap(api.POST("/api/campaigns/{campaign_id}/enrollments", { ...path(id), body: { filter } }));

export const listMessages = (campaignId: string) =>
  unwrap(api.GET("/api/messages", { params: { query: { campaign_id: campaignId, limit: 20 } } }));
export const getMessage = (id: string) =>
  unwrap(api.GET("/api/messages/{message_id}", { params: { path: { message_id: id } } }));

export const listLeadChoices = () => unwrap(api.GET("/api/leads", { params: { query: { limit: 100 } } }));

export type StepPreview = S["StepPreview"];
export type StepPreviewRequest = S["StepPreviewRequest"];
export const previewStep = (id: string, stepId: string, body: StepPreviewRequest) =>
  unwrap(
    api.POST("/api/campaigns/{campaign_id}/steps/{step_id}/preview", {
      params: { path: { campaign_id: id, step_id: stepId } },
      body,
    }),
  );
export const searchLeads = (q: string) =>
  unwrap(api.GET("/api/leads", { params: { query: q ? { q, limit: 10 } : { limit: 10 } } }));
