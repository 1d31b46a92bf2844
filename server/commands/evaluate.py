"""``paperfeed evaluate``: replay an event log and compare trending, ALS and the blend offline.

A thin wrapper: the work is in :mod:`recommender.evaluate`. Needs no Redis.
"""

from __future__ import annotations

import argparse
import sys

from recommender import evaluate
from recommender.als import TrainParams
from recommender.ranking import BlendParams
from recommender.settings import Settings

NAME = "evaluate"
HELP = "Replay a user,item,ts CSV and score trending, ALS and the blend (recall/NDCG@k)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``paperfeed evaluate``."""
    parser.add_argument(
        "--events",
        required=True,
        metavar="FILE.csv",
        help="CSV with header user,item,ts (Unix seconds) [,kind]",
    )
    parser.add_argument("--protocol", choices=("hourly", "daily"), default="hourly")
    parser.add_argument(
        "--split",
        choices=("time", "random"),
        default="time",
        help="time: replay in order; random: per-user 20%% hold-out",
    )
    parser.add_argument("--k", type=int, default=20, help="list length (default 20)")
    parser.add_argument("--plot", metavar="FILE.png", help="write metrics per day as a PNG")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--max-days", type=float, help="replay only this many days")
    parser.add_argument(
        "--sample-users",
        type=float,
        default=1.0,
        metavar="FRACTION",
        help="score the requests of this fraction of users (default all)",
    )
    parser.add_argument(
        "--report-from",
        metavar="YYYY-MM-DD",
        help="summary covers days from this date; earlier days are 'tuning'",
    )
    parser.add_argument(
        "--trending-half-life-h",
        type=float,
        help="trending half-life (default: PAPERFEED_TRENDING_HALF_LIFE_H)",
    )
    parser.add_argument("--seed", type=int, default=0)
    defaults_t, defaults_b = TrainParams(), BlendParams()
    parser.add_argument("--factors", type=int, default=defaults_t.factors)
    parser.add_argument("--iterations", type=int, default=defaults_t.iterations)
    parser.add_argument("--regularization", type=float, default=defaults_t.regularization)
    parser.add_argument("--alpha", type=float, default=defaults_t.alpha)
    parser.add_argument(
        "--interaction-half-life-days", type=float, default=defaults_t.interaction_half_life_days
    )
    parser.add_argument("--personal-weight", type=float, default=defaults_b.personal_weight)
    parser.add_argument("--history-half", type=float, default=defaults_b.history_half)
    parser.add_argument("--trending-k", type=int, default=defaults_b.trending_k)
    parser.add_argument("--personal-k", type=int, default=defaults_b.personal_k)
    parser.add_argument("--trending-offset", type=float, default=defaults_b.trending_offset)
    parser.add_argument(
        "--decorrelate", action="store_true", help="remove momentum's share of the ALS z-score"
    )
    parser.add_argument("--coread-weight", type=float, default=defaults_b.coread_weight)
    parser.add_argument("--coread-kappa", type=float, default=defaults_b.coread_kappa)
    parser.add_argument("--coread-norm", type=float, default=defaults_b.coread_norm)
    parser.add_argument("--coread-k", type=int, default=defaults_b.coread_k)
    parser.add_argument(
        "--coread-half-life-h",
        type=float,
        help="half-life of a recent read in the co-reading table "
        "(default: PAPERFEED_COREAD_HALF_LIFE_H)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar (stderr)")


def config_from_args(args: argparse.Namespace, settings: Settings) -> evaluate.EvalConfig:
    """The :class:`~recommender.evaluate.EvalConfig` the options describe."""
    half_life = args.trending_half_life_h or settings.trending_half_life_h
    return evaluate.EvalConfig(
        protocol=args.protocol,
        split=args.split,
        k=args.k,
        train=TrainParams(
            factors=args.factors,
            iterations=args.iterations,
            regularization=args.regularization,
            alpha=args.alpha,
            interaction_half_life_days=args.interaction_half_life_days,
            seed=args.seed,
        ),
        blend=BlendParams(
            trending_k=args.trending_k,
            personal_k=args.personal_k,
            personal_weight=args.personal_weight,
            history_half=args.history_half,
            trending_offset=args.trending_offset,
            decorrelate=args.decorrelate,
            coread_weight=args.coread_weight,
            coread_kappa=args.coread_kappa,
            coread_norm=args.coread_norm,
            coread_k=args.coread_k,
        ),
        trending_half_life_h=half_life,
        coread_half_life_h=args.coread_half_life_h or settings.coread_half_life_h,
        max_days=args.max_days,
        sample_users=args.sample_users,
        report_from=args.report_from,
        seed=args.seed,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the evaluation; print a table (or JSON); 2 on bad input."""
    try:
        config = config_from_args(args, settings)
        # tqdm writes to stderr, so the bar never mixes with --json on stdout
        result = evaluate.evaluate(args.events, config, progress=not args.no_progress)
    except (OSError, ValueError) as exc:
        print(f"paperfeed evaluate: {exc}", file=sys.stderr)
        return 2
    if args.plot:
        evaluate.plot(result, args.plot)
    print(evaluate.to_json(result) if args.json else evaluate.format_table(result))
    return 0
