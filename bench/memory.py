"""Memory: a worker's resident set size while it renders and seals 1,000 PDFs (the ethics
panel's decision letter, a real WeasyPrint + pyHanko document), sampled every 50. Goals: at
most 300 MB at the end, and no upward trend over the last 500 (a least-squares slope of at
most 1 MB per 100 renders). The baseline is the RSS after the first, warm-up render."""

from __future__ import annotations

import resource
import time

from common import bench_app, report

RENDERS = 1000
SAMPLE_EVERY = 50
LIMIT_MB = 300
SLOPE_LIMIT_MB_PER_100 = 1.0


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope, in MB per 100 renders."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    num = sum((x - mean_x) * (y - mean_y) for x, y in points)
    den = sum((x - mean_x) ** 2 for x, _ in points)
    return num / den * 100 if den else 0.0


def main() -> None:
    from signing import _site

    from portal.extensions import db
    from portal.records.render import pdf_source
    from portal.records.seal import seal
    from portal.review.models import Opinion
    from portal.review.papers import PANEL_LANGUAGE, PANEL_LOCALE, letter_data

    with bench_app() as (app, _directory, _url):
        _site(app, 1)  # the demo: its protocol was approved through a real opinion
        with app.test_request_context():
            opinion = db.session.query(Opinion).first()
            context = {"opinion": opinion, "submission": opinion.submission}
            data = letter_data(opinion, "BENCH", opinion.recorded_at)

            def render_once() -> None:
                pdf = pdf_source(
                    "pdf/decision_letter.html",
                    PANEL_LOCALE,
                    data,
                    "benchmark",
                    paper_language=PANEL_LANGUAGE,
                    **context,
                ).render()
                seal(pdf, reason="benchmark")

            render_once()
            baseline = rss_mb()
            samples: list[tuple[int, float]] = []
            began = time.perf_counter()
            for n in range(1, RENDERS + 1):
                render_once()
                if n % SAMPLE_EVERY == 0:
                    samples.append((n, rss_mb()))
            elapsed = time.perf_counter() - began
    final = samples[-1][1]
    trend = slope([p for p in samples if p[0] > RENDERS - 500])
    report(
        f"memory: worker RSS over {RENDERS} PDF renders + seals ({elapsed:.0f} s)",
        f"{final:.0f} MB at the end, trend {trend:+.2f} MB per 100 over the last 500",
        f"{baseline:.0f} MB after the first render",
        final / baseline,
        f"<= {LIMIT_MB} MB, trend <= {SLOPE_LIMIT_MB_PER_100} MB per 100",
        final <= LIMIT_MB and trend <= SLOPE_LIMIT_MB_PER_100,
    )


if __name__ == "__main__":
    main()
