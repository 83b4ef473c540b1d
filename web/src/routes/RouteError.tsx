import { isRouteErrorResponse, Link, useRouteError } from "react-router";

/** What a screen shows when loading its code or rendering it failed. */
export default function RouteError() {
  const error = useRouteError();
  const message = isRouteErrorResponse(error)
    ? `${error.status} ${error.statusText}`
    : error instanceof Error
      ? error.message
      : "Something went wrong.";
  return (
    <main id="main" className="auth-page">
      <h1>Something went wrong</h1>
      <p role="alert">{message}</p>
      <p>
        <Link to="/">Go to the start</Link> or reload the page.
      </p>
    </main>
  );
}
