/** The step preview's logic: debounced inputs and the query they key. */
import { keepPreviousData, queryOptions } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { ProblemError } from "../../api/problem";
import { previewStep, searchLeads, type StepPreviewRequest } from "./api";

/** How long typing (in the lead search or a template) rests before the server is asked. */
export const PREVIEW_DEBOUNCE_MS = 300;

/**
 * ``value`` once it has stayed the same for ``ms``. Values are compared by their JSON, so a form
 * rebuilt on every render with the same content does not restart the wait.
 */
export function useDebounced<T>(value: T, ms: number = PREVIEW_DEBOUNCE_MS): T {
  const json = JSON.stringify(value);
  const [settled, setSettled] = useState(json);
  useEffect(() => {
    if (json === settled) return;
    const timer = setTimeout(() => { setSettled(json); }, ms);
    return () => { clearTimeout(timer); };
  }, [json, settled, ms]);
  return JSON.parse(settled) as T;
}

/** The unsaved copy a preview renders: what a step save would send, less timing. */
export type PreviewFields = Omit<StepPreviewRequest, "lead_id" | "variant">;

export const previewKeys = {
  leads: (q: string) => ["leads", "preview-picker", q] as const,
  preview: (campaignId: string, stepId: string, leadId: string, variant: string, fields: PreviewFields) =>
    ["campaigns", campaignId, "steps", stepId, "preview", leadId, variant, fields] as const,
};

/** A problem the server answered (4xx) is not worth retrying; a network failure is, once. */
function retry(count: number, error: unknown): boolean {
  if (error instanceof ProblemError && error.status >= 400 && error.status < 500) return false;
  return count < 1;
}

/** The leads whose names, email, phone or company match ``q`` (the first ten). */
export function leadSearchQuery(q: string) {
  return queryOptions({
    queryKey: previewKeys.leads(q),
    queryFn: () => searchLeads(q),
    placeholderData: keepPreviousData,
    retry,
  });
}

/** The step rendered for ``leadId`` from ``fields`` (already debounced); idle until a lead is picked. */
export function stepPreviewQuery(
  campaignId: string,
  stepId: string,
  leadId: string,
  variant: string,
  fields: PreviewFields,
) {
  return queryOptions({
    queryKey: previewKeys.preview(campaignId, stepId, leadId, variant, fields),
    queryFn: () => previewStep(campaignId, stepId, { ...fields, lead_id: leadId, variant: variant || null }),
    enabled: Boolean(leadId),
    placeholderData: keepPreviousData,
    retry,
    staleTime: 30_000,
  });
}
