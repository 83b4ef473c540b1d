import { useQuery } from "@tanstack/react-query";
import { Link, useParams } from "react-router";
import { ListState } from "../../components/ListState";
import { getWebhook, listDeliveries, webhookKeys } from "./api";
import "../campaigns/campaigns.css";

/** An endpoint's delivery log, newest first, each delivery with every attempt. */
export default function Deliveries() {
  const { webhookId = "" } = useParams();
  const webhook = useQuery({ queryKey: webhookKeys.webhook(webhookId), queryFn: () => getWebhook(webhookId) });
  const deliveries = useQuery({
    queryKey: webhookKeys.deliveries(webhookId),
    queryFn: () => listDeliveries(webhookId),
    refetchInterval: 10_000,
  });
  return (
    <div>
      <p>
        <Link to="/webhooks">All webhooks</Link>
      </p>
      <h1>Deliveries{webhook.data ? ` to ${webhook.data.url}` : ""}</h1>
      <ListState
        label="deliveries"
        isPending={deliveries.isPending}
        error={deliveries.error}
        items={deliveries.data?.items}
        onRetry={() => { void deliveries.refetch(); }}
        empty={<p>Nothing delivered yet: events appear here as they happen.</p>}
      >
        {(items) => (
          <ul className="cards" aria-label="Deliveries">
            {items.map((d) => (
              <li key={d.id} className="card">
                <h2>
                  {d.event_type} · {d.status}
                </h2>
                <p>
                  {new Date(d.created_at).toLocaleString()} · {d.attempts} attempt{d.attempts === 1 ? "" : "s"}
                  {d.last_status_code ? ` · last HTTP ${String(d.last_status_code)}` : ""}
                  {d.next_attempt_at ? ` · next try ${new Date(d.next_attempt_at).toLocaleString()}` : ""}
                </p>
                {d.last_error ? <p className="field__error">{d.last_error}</p> : null}
                {d.attempt_log.length ? (
                  <ol aria-label={`Attempts of delivery ${d.id}`}>
                    {d.attempt_log.map((a) => (
                      <li key={a.number}>
                        #{a.number} {new Date(a.started_at).toLocaleString()} · {a.status_code ?? "no answer"} ·{" "}
                        {a.duration_ms} ms{a.error ? ` · ${a.error}` : ""}
                      </li>
                    ))}
                  </ol>
                ) : null}
                <details>
                  <summary>Payload</summary>
                  <pre>{JSON.stringify(d.payload, null, 2)}</pre>
                </details>
              </li>
            ))}
          </ul>
        )}
      </ListState>
    </div>
  );
}
