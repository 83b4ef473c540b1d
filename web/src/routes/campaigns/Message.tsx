import { useQuery } from "@tanstack/react-query";
import { Link, useParams } from "react-router";
import { ListState } from "../../components/ListState";
import { campaignKeys, getMessage } from "./api";
import "./campaigns.css";

/** One message: what was sent, its events, and how its content was written (the audit trail). */
export default function Message() {
  const { messageId = "" } = useParams();
  const message = useQuery({ queryKey: campaignKeys.message(messageId), queryFn: () => getMessage(messageId) });
  if (message.isPending || message.error) {
    return (
      <ListState label="the message" isPending={message.isPending} error={message.error} items={[]} empty={null} onRetry={() => { void message.refetch(); }}>
        {() => null}
      </ListState>
    );
  }
  const m = message.data;
  const p = m.personalization;
  return (
    <div>
      <p>
        <Link to={`/campaigns/${m.campaign_id}/live`}>Back to the live view</Link>
      </p>
      <h1>{m.subject ?? `${m.channel} message`}</h1>
      <dl>
        <dt>Status</dt>
        <dd>
          {m.status}
          {m.hold_reason ? ` (${m.hold_reason})` : ""}
          {m.error_code ? ` · ${m.error_code}: ${m.error_detail ?? ""}` : ""}
        </dd>
        <dt>Channel</dt>
        <dd>{m.channel}</dd>
        <dt>Variant</dt>
        <dd>{m.variant ?? "none"}</dd>
        <dt>Attempt</dt>
        <dd>{m.attempt}</dd>
        <dt>Sent</dt>
        <dd>{m.sent_at ? new Date(m.sent_at).toLocaleString() : "not yet"}</dd>
        <dt>Provider id</dt>
        <dd>{m.provider_message_id ?? "—"}</dd>
      </dl>
      {m.body ? (
        <section aria-labelledby="body-title">
          <h2 id="body-title">Content</h2>
          <pre>{m.body}</pre>
        </section>
      ) : null}
      <section aria-labelledby="events-title">
        <h2 id="events-title">Events</h2>
        {m.events.length === 0 ? (
          <p>No event yet.</p>
        ) : (
          <ol aria-label="Events">
            {m.events.map((e) => (
              <li key={e.id}>
                {new Date(e.occurred_at).toLocaleString()} · <strong>{e.type}</strong>
                {Object.keys(e.data).length ? ` · ${JSON.stringify(e.data)}` : ""}
              </li>
            ))}
          </ol>
        )}
      </section>
      <section aria-labelledby="audit-title">
        <h2 id="audit-title">Audit trail</h2>
        {p ? (
          <dl>
            <dt>Written by</dt>
            <dd>
              {p.source === "openai" ? "OpenAI" : p.source === "local" ? "the local template writer" : "the template (after a model failure)"}{" "}
              · {p.model} · prompt {p.prompt_version}
            </dd>
            {p.fallback_reason ? (
              <>
                <dt>Fallback reason</dt>
                <dd>{p.fallback_reason}</dd>
              </>
            ) : null}
            <dt>Tokens</dt>
            <dd>
              {p.prompt_tokens} in, {p.completion_tokens} out · ${p.cost_usd.toFixed(4)} · {p.latency_ms} ms
            </dd>
            <dt>When</dt>
            <dd>{new Date(p.created_at).toLocaleString()}</dd>
          </dl>
        ) : (
          <p>The content has not been written yet.</p>
        )}
      </section>
    </div>
  );
}
