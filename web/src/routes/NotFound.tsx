import { Link } from "react-router";

export default function NotFound() {
  return (
    <section aria-labelledby="not-found-title">
      <h1 id="not-found-title">Page not found</h1>
      <p>
        There is no page here. <Link to="/">Go to the start</Link>
      </p>
    </section>
  );
}
