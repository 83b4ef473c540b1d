/** The API calls of the leads screens: leads, timelines, CSV imports and suppressions. */
import { api, unwrap } from "../../api/client";
import type { components } from "../../api/schema";

type S = components["schemas"];
export type LeadRead = S["LeadRead"];
export type ImportRead = S["ImportRead"];
export type Timeline = S["Timeline"];
export type SuppressionRead = S["SuppressionRead"];
export type SuppressionCreate = S["SuppressionCreate"];
export type SuppressionImportResult = S["SuppressionImportResult"];
export type SuppressionChannel = S["SuppressionChannel"];
export type SuppressionReason = S["SuppressionReason"];

export const PAGE_SIZE = 100;

export const leadKeys = {
  leads: ["leads"] as const,
  list: (query: Record<string, string | number>) => ["leads", "list", query] as const,
  lead: (leadId: string) => ["leads", leadId] as const,
  timeline: (leadId: string) => ["leads", leadId, "timeline"] as const,
  imports: ["lead-imports"] as const,
  import: (importId: string) => ["lead-imports", importId] as const,
  suppressions: ["suppressions"] as const,
  suppressionList: (query: Record<string, string | number>) => ["suppressions", "list", query] as const,
};

export function listLeads(query: Record<string, string | number>) {
  return unwrap(api.GET("/api/leads", { params: { query } }));
}

export function getLead(leadId: string) {
  return unwrap(api.GET("/api/leads/{lead_id}", { params: { path: { lead_id: leadId } } }));
}

export function getTimeline(leadId: string) {
  return unwrap(api.GET("/api/leads/{lead_id}/timeline", { params: { path: { lead_id: leadId } } }));
}

export function eraseLead(leadId: string) {
  return unwrap(api.DELETE("/api/leads/{lead_id}", { params: { path: { lead_id: leadId } } }));
}

export interface ImportOptions {
  mapping: string | null;
  delimiter: string;
  default_region: string;
  unmapped: string;
  consent_source: string;
  check_mx: boolean;
}

/** Upload a CSV (multipart); ``key`` makes a repeated upload return the first import. */
export function createImport(file: File, options: ImportOptions, key: string) {
  const form = new FormData();
  form.set("file", file, file.name);
  if (options.mapping) form.set("mapping", options.mapping);
  if (options.delimiter) form.set("delimiter", options.delimiter);
  if (options.default_region.trim()) form.set("default_region", options.default_region.trim());
  if (options.unmapped) form.set("unmapped", options.unmapped);
  if (options.consent_source.trim()) form.set("consent_source", options.consent_source.trim());
  form.set("check_mx", options.check_mx ? "true" : "false");
  return unwrap(
    api.POST("/api/leads/imports", {
      // openapi-fetch sends a FormData body as is (the browser sets the multipart boundary).
      body: form as never,
      params: { header: { "Idempotency-Key": key } },
    }),
  );
}

export function listImports() {
  return unwrap(api.GET("/api/leads/imports", { params: { query: { limit: 10 } } }));
}

export function getImport(importId: string) {
  return unwrap(api.GET("/api/leads/imports/{import_id}", { params: { path: { import_id: importId } } }));
}

export function getReport(importId: string) {
  return unwrap<Blob>(
    api.GET("/api/leads/imports/{import_id}/report", { params: { path: { import_id: importId } }, parseAs: "blob" }),
  );
}

export function listSuppressions(query: Record<string, string | number>) {
  return unwrap(api.GET("/api/suppressions", { params: { query } }));
}

export function createSuppression(body: SuppressionCreate) {
  return unwrap(api.POST("/api/suppressions", { body }));
}

export function importSuppressions(file: File, channel: string, reason: string) {
  const form = new FormData();
  form.set("file", file, file.name);
  form.set("channel", channel);
  form.set("reason", reason);
  return unwrap(api.POST("/api/suppressions/import", { body: form as never }));
}

export function exportSuppressions() {
  return unwrap<Blob>(api.GET("/api/suppressions/export", { parseAs: "blob" }));
}

/** Hand a downloaded file to the browser as a download named ``filename``. */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => {
    URL.revokeObjectURL(url);
  }, 10_000);
}

/** A fresh Idempotency-Key. */
export function newKey(): string {
  if (typeof crypto !== "undefined" && "randomUUID" in crypto) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}
