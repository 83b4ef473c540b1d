import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { toProblem } from "../../api/problem";
import { ListState } from "../../components/ListState";
import { eraseLead, getLead, getTimeline, leadKeys, type LeadRead, type Timeline } from "./api";
import "./leads.css";

function when(value: string | null | undefined): string {
  return value ? new Date(value).toLocaleString() : "";
}

function cellText(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

function Details({ lead }: { lead: LeadRead }) {
  const rows: [string, string][] = [
    ["Email", lead.email ?? ""],
    ["Phone", lead.phone ?? ""],
    ["First name", lead.first_name ?? ""],
    ["Last name", lead.last_name ?? ""],
    ["Company", lead.company ?? ""],
    ["Job title", lead.title ?? ""],
    ["Time zone", lead.timezone ?? ""],
    ["Status", lead.status],
    ["Email consent", when(lead.consent_email_at)],
    ["SMS consent", when(lead.consent_sms_at)],
    ["Voicemail consent", when(lead.consent_voice_at)],
    ["Added", when(lead.created_at)],
  ];
  for (const [key, value] of Object.entries(lead.custom_fields)) rows.push([key, cellText(value)]);
  return (
    <dl className="details">
      {rows
        .filter(([, value]) => value !== "")
        .map(([label, value]) => (
          <div key={label}>
            <dt>{label}</dt>
            <dd>{value}</dd>
          </div>
        ))}
    </dl>
  );
}

function TimelineView({ timeline }: { timeline: Timeline }) {
  return (
    <>
      <h3>Campaigns</h3>
      {timeline.enrollments.length ? (
        <ul className="timeline" aria-label="Campaigns of this lead">
          {timeline.enrollments.map((enrollment) => (
            <li key={enrollment.id}>
              <strong>{enrollment.campaign_name}</strong> · {enrollment.status}
              {enrollment.waiting ? <p>Next step waits: {enrollment.waiting.detail}</p> : null}
              {enrollment.stopped_reason ? <p>Stopped: {enrollment.stopped_reason}</p> : null}
            </li>
          ))}
        </ul>
      ) : (
        <p>Not enrolled in any campaign.</p>
      )}
      <h3>Messages</h3>
      {timeline.messages.length ? (
        <ul className="timeline" aria-label="Messages to this lead">
          {timeline.messages.map((message) => (
            <li key={message.id}>
              <strong>{message.channel}</strong> · {message.status}
              {message.subject ? ` · ${message.subject}` : ""} · {when(message.sent_at ?? message.created_at)}
              {message.events.length ? (
                <p>{message.events.map((event) => `${event.type} ${when(event.occurred_at)}`).join(" · ")}</p>
              ) : null}
            </li>
          ))}
        </ul>
      ) : (
        <p>No message yet.</p>
      )}
      <h3>Events</h3>
      {timeline.events.length ? (
        <ol className="timeline" aria-label="Events of this lead">
          {timeline.events.map((event) => (
            <li key={event.id}>
              {when(event.occurred_at)} · {event.type}
            </li>
          ))}
        </ol>
      ) : (
        <p>Nothing has happened to this lead yet.</p>
      )}
    </>
  );
}

function Erase({ lead }: { lead: LeadRead }) {
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [asking, setAsking] = useState(false);
  const confirm = useRef<HTMLButtonElement>(null);
  const opener = useRef<HTMLButtonElement>(null);
  const label = lead.email ?? lead.phone ?? lead.id;
  const erase = useMutation({
    mutationFn: () => eraseLead(lead.id),
    onSuccess: async () => {
      await queryClient.invalidateQueries({ queryKey: leadKeys.leads });
      await queryClient.invalidateQueries({ queryKey: leadKeys.suppressions });
      await navigate("/leads", { state: { erased: label } });
    },
  });
  useEffect(() => {
    if (asking) confirm.current?.focus();
  }, [asking]);
  if (lead.status === "erased") return <p>This lead was erased {when(lead.erased_at)}.</p>;
  if (!asking) {
    return (
      <button
        ref={opener}
        type="button"
        className="button-danger"
        onClick={() => {
          setAsking(true);
        }}
      >
        Erase this lead…
      </button>
    );
  }
  return (
    <div
      className="confirm"
      role="alertdialog"
      aria-labelledby="erase-title"
      aria-describedby="erase-detail"
      onKeyDown={(event) => {
        if (event.key === "Escape") setAsking(false);
      }}
    >
      <h3 id="erase-title">Erase {label}?</h3>
      <p id="erase-detail">
        Their personal data is removed for good and the contact is suppressed, so it is never reached or imported
        again. This cannot be undone.
      </p>
      {erase.error ? (
        <p className="field__error" role="alert">
          Could not erase: {toProblem(erase.error).detail}
        </p>
      ) : null}
      <div className="actions">
        <button
          ref={confirm}
          type="button"
          className="button-danger"
          disabled={erase.isPending}
          onClick={() => {
            erase.mutate();
          }}
        >
          {erase.isPending ? "Erasing…" : "Erase for good"}
        </button>
        <button
          type="button"
          className="button-secondary"
          onClick={() => {
            setAsking(false);
          }}
        >
          Cancel
        </button>
      </div>
    </div>
  );
}

export default function Lead() {
  const { leadId = "" } = useParams();
  const lead = useQuery({ queryKey: leadKeys.lead(leadId), queryFn: () => getLead(leadId) });
  const timeline = useQuery({ queryKey: leadKeys.timeline(leadId), queryFn: () => getTimeline(leadId) });
  const data = lead.data;
  const title = data ? (data.email ?? data.phone ?? "Erased lead") : "Lead";
  return (
    <div className="columns">
      <section aria-labelledby="lead-title">
        <p>
          <Link to="/leads">All leads</Link>
        </p>
        <h1 id="lead-title">{title}</h1>
        <ListState
          label="the lead"
          isPending={lead.isPending}
          error={lead.error}
          items={data ? [data] : undefined}
          onRetry={() => {
            void lead.refetch();
          }}
          empty={null}
        >
          {([item]) =>
            item ? (
              <>
                <Details lead={item} />
                <Erase lead={item} />
              </>
            ) : null
          }
        </ListState>
      </section>
      <section aria-labelledby="timeline-title">
        <h2 id="timeline-title">Timeline</h2>
        <ListState
          label="the timeline"
          isPending={timeline.isPending}
          error={timeline.error}
          items={timeline.data ? [timeline.data] : undefined}
          onRetry={() => {
            void timeline.refetch();
          }}
          empty={null}
        >
          {([item]) => (item ? <TimelineView timeline={item} /> : null)}
        </ListState>
      </section>
    </div>
  );
}
