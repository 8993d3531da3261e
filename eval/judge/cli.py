"""``mirada judge``: a VLM judge that sees the image, calibrated against the team's own reviews.

    mirada judge calibrate --workspace ws --dry-run                  # cost of judging reviewed pairs
    CO_API_KEY=… mirada judge calibrate --workspace ws --judge-prompt v1,v2 --budget-usd 450
    CO_API_KEY=… mirada judge --workspace ws --systems base,dpo-r16  # win rates on the test split
    mirada judge --workspace ws --systems dpo-r16 --mode rubric      # 1-5 per criterion, one system
    mirada judge --workspace ws --systems base,dpo-r16 --card runs/dpo-r16   # + the run's Model Card
    mirada judge --workspace ws --systems base,dpo --backend openai --set openai.base_url=http://gpu:8000/v1
    python -m eval.judge --workspace ws --systems base,dpo-r16

Calibration judges every candidate pair the annotators ranked, in both orders, with each judge
prompt, reports agreement with the humans next to their own agreement (the human ceiling) and
records the best prompt as this workspace's calibrated judge; ``mirada judge`` then uses it by
default. Judging reuses drafting's runner: cached verdicts are never paid twice (also after
``kill -9``), and ``--budget-usd`` caps the workspace's total spend, drafting's included.
Results: ``exports/eval/<name>/judge.json`` (+ ``judge.md``, ``judge_win_rates.png``) and
``exports/eval/judge-calibration/``. When ``mirada eval`` already wrote ``exports/eval/<name>/``, its
report gets the judge's section (win rates beside the judge's agreement with the annotators), and
so does the Model Card given with ``--card``; a later ``mirada eval`` keeps it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data_tools.config import load_config
from data_tools.draft.cli import make_backend, run_paid
from data_tools.draft.runner import DraftSummary
from data_tools.review.agreement import agreement
from data_tools.stage_args import UserError, add_common_args, add_config_args, run_stage
from data_tools.workspace import Workspace
from eval.judge import report, section, service
from eval.judge.config import JudgeConfig
from eval.judge.prompts import load_prompt
from eval.judge.runner import JudgeJob, JudgeRunner


def build_parser(prog: str, calibrate: bool) -> argparse.ArgumentParser:
    description = (
        "Compare the judge with your annotators on the reviewed images, for one or more judge prompts, and record "
        "the best prompt as this workspace's calibrated judge."
        if calibrate
        else "Judge generated captions with a vision-language model that sees the image: win/tie/loss of each "
        "system against the first one listed (pairwise, both orders) or 1-5 scores per criterion (rubric)."
    )
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add_common_args(parser)
    if not calibrate:
        parser.add_argument(
            "--systems", required=True, help="comma-separated systems; the first is the baseline"
        )
        parser.add_argument("--mode", choices=["pairwise", "rubric"], help="override the configured mode")
        parser.add_argument("--split", help="judge images of this prefs split (default: test)")
        parser.add_argument("--name", help="report folder exports/eval/<name> (default: the split)")
        parser.add_argument(
            "--card", type=Path, metavar="RUN_DIR",
            help="a mirada train output folder whose Model Card (README.md) gets the judge's section",
        )  # fmt: skip
    if calibrate:
        parser.add_argument("--limit", type=int, help="calibrate on the first N reviewed images only")
    parser.add_argument(
        "--judge-prompt",
        help="judge prompt version" + ("s, comma-separated (default: v1,v2)" if calibrate else
                                       " (default: the calibrated one, else v1)"),
    )  # fmt: skip
    parser.add_argument(
        "--backend", choices=["cohere", "local", "openai"], help="override the configured backend"
    )
    parser.add_argument("--model", help="override the backend's model")
    parser.add_argument("--budget-usd", type=float, help="hard cap on the workspace's total spend (USD)")
    parser.add_argument("--dry-run", action="store_true", help="estimate tokens and cost, send nothing")
    add_config_args(parser, JudgeConfig)
    return parser


def resolve_config(args: argparse.Namespace) -> JudgeConfig:
    overrides = list(args.overrides)
    if args.backend:
        overrides.append(f"backend={args.backend}")
    config = load_config(JudgeConfig, args.config, overrides)
    if args.model:
        getattr(config, config.backend).model = args.model
    if args.budget_usd is not None:
        config.budget_usd = args.budget_usd
    if getattr(args, "mode", None):
        config.mode = args.mode
    if getattr(args, "split", None):
        config.split = args.split
    return config


def _estimate(runner: JudgeRunner, jobs: list[JudgeJob], budget: float | None) -> None:
    pending = runner.pending(jobs)
    cost = runner.estimate_cost(pending)
    print(f"judge --dry-run ({cost['model']}): {len(pending)} verdicts to ask, {len(jobs) - len(pending)} already "
          f"judged (cached); {cost['input_tokens_expected']:,} input and {cost['output_tokens_expected']:,} output "
          f"tokens expected; cost expected ${cost['cost_expected_usd']:.4f}, cost upper bound "
          f"${cost['cost_upper_usd']:.4f} (one attempt each)" + (f"; budget ${budget:.2f}" if budget is not None else ""))  # fmt: skip


def _execute(workspace: Workspace, runner: JudgeRunner, config: JudgeConfig, jobs: list[JudgeJob],
             stage_config: dict[str, Any]) -> tuple[DraftSummary, int]:  # fmt: skip
    """Run ``jobs`` (only the pending ones are sent) under a ``judge`` run record."""
    if runner.pending(jobs):
        runner.backend = make_backend(config)  # type: ignore[arg-type]
        summary, run_id = run_paid(workspace, "judge", stage_config, runner, jobs)
    else:
        summary = DraftSummary(planned=len(jobs), cached=len(jobs))
        with workspace.run("judge", stage_config) as run:
            run.summary = summary.to_dict()
        run_id = run.id
    if summary.stopped_by_budget:
        print(f"stopped: the next verdict could pass the budget; {summary.not_started} verdicts are left. "
              "Raise --budget-usd and rerun to continue (figures below use what was judged).")  # fmt: skip
    if summary.held_elsewhere:
        print(
            f"{summary.held_elsewhere} verdicts are being judged by another process on this workspace (skipped)"
        )
    if summary.failures:
        print("verdicts that failed (retried on the next run): "
              + ", ".join(f"{k}={v}" for k, v in summary.failures.most_common()))  # fmt: skip
    print(f"judge calls: sent {summary.calls.get('sent', 0)}, cached {summary.cached}, "
          f"spent ${summary.spent_usd:.4f} this run, workspace total ${workspace.spend()['cost_usd']:.4f}")  # fmt: skip
    return summary, run_id


def calibrate_main(argv: Sequence[str] | None, prog: str) -> int:
    parser = build_parser(prog, calibrate=True)

    def body(args: argparse.Namespace) -> int:
        config = resolve_config(args)
        versions = [
            v.strip()
            for v in (args.judge_prompt or ",".join(config.calibrate_versions)).split(",")
            if v.strip()
        ]
        prompts = [load_prompt(v, config.prompts_dir) for v in versions]
        with Workspace.open(args.workspace, create=False) as workspace:
            try:
                runner = JudgeRunner(workspace, config)
            except ValueError as exc:  # unknown price
                raise UserError(str(exc)) from None
            for warning in runner.prompt_warnings(prompts):
                print(f"warning: {warning}")
            plan = service.plan_calibration(workspace, runner, prompts, args.limit)
            jobs = [job for plans in plan.pairs.values() for job in service.jobs_of(plans)]
            reviewed = {u.image_id for u in plan.units}
            unreviewed = len(workspace.images(status=None)) - len(reviewed)
            print(f"calibration: {len(plan.units)} reviewed candidate pairs on {len(reviewed)} images, "
                  f"{len(prompts)} judge prompt(s), {len(jobs)} verdicts (both orders)"
                  + (f"; {unreviewed} images without human rankings are left out" if unreviewed > 0 else ""))  # fmt: skip
            if args.dry_run:
                _estimate(runner, jobs, config.budget_usd)
                return 0
            _, run_id = _execute(
                workspace, runner, config, jobs, {**config.model_dump(mode="json"), "calibrate": versions}
            )
            results = service.calibration_results(
                workspace, plan, n_resamples=config.bootstrap_resamples, confidence=config.confidence
            )
            chosen = service.choose(results)
            workspace.save_calibrations(
                [{"prompt_version": v, "backend": config.backend, "model": config.model, "metrics": r}
                 for v, r in results.items()], chosen, run_id,
            )  # fmt: skip
            out = workspace.root / "exports" / "eval" / "judge-calibration"
            annotators = agreement(workspace.review_responses(), workspace.review_items())
            data = {"backend": config.backend, "model": config.model, "chosen": chosen, "prompts": results,
                    "annotator_agreement": annotators}  # the review stage's own figures, for reference  # fmt: skip
            report.write_json(out / "calibration.json", data)
            (out / "calibration.md").write_text(
                report.calibration_markdown(results, chosen), encoding="utf-8"
            )
            report.plot_calibration(results, out / "calibration.png")
            print(report.calibration_markdown(results, chosen))
            print("written: exports/eval/judge-calibration/ (calibration.json, .md, .png)")
        return 0

    return run_stage(body, parser, argv)


def judge_main(argv: Sequence[str] | None, prog: str) -> int:
    parser = build_parser(prog, calibrate=False)

    def body(args: argparse.Namespace) -> int:
        config = resolve_config(args)
        systems = [s.strip() for s in args.systems.split(",") if s.strip()]
        if not systems:
            raise UserError("--systems needs at least one system name")
        if args.card is not None and not (args.card / "README.md").is_file():
            raise UserError(
                f"--card {args.card}: no README.md there (pass the output folder of mirada train)"
            )
        with Workspace.open(args.workspace, create=False) as workspace:
            try:
                runner = JudgeRunner(workspace, config)
            except ValueError as exc:
                raise UserError(str(exc)) from None
            calibrated = workspace.calibrated_judge(config.backend, config.model)
            version = (
                args.judge_prompt or config.prompt_version or (calibrated or {}).get("prompt_version") or "v1"
            )
            calibration = workspace.calibrated_judge(config.backend, config.model, prompt_version=version)
            prompt = load_prompt(version, config.prompts_dir)
            service.check_systems(workspace, systems, config.mode)
            for warning in runner.prompt_warnings([prompt]):
                print(f"warning: {warning}")
            trust = report.trust_label(calibration)
            print(f"judge: {config.model} with prompt {version}; {trust}")
            if config.mode == "pairwise":
                plans, where = service.plan_win_rates(workspace, runner, prompt, systems, config.split)
                jobs = [job for p in plans.values() for job in service.jobs_of(p)]
            else:
                rubric_jobs, where = service.plan_rubric(workspace, runner, prompt, systems, config.split)
                jobs = [job for js in rubric_jobs.values() for job in js]
            if args.dry_run:
                _estimate(runner, jobs, config.budget_usd)
                return 0
            stage_config = {**config.model_dump(mode="json"), "systems": systems, "prompt_version": version}
            _execute(workspace, runner, config, jobs, stage_config)
            name = args.name or config.split or "all"
            out = workspace.root / "exports" / "eval" / name
            data: dict[str, Any] = {
                "judge": {"backend": config.backend, "model": config.model, "prompt_version": version,
                          "calibration": calibration["metrics"] if calibration else None, "trust": trust,
                          "below_human_ceiling": (calibration or {}).get("metrics", {}).get("below_human_ceiling")},
                "images": where, "mode": config.mode, "systems": systems, "confidence": config.confidence,
            }  # fmt: skip
            if config.mode == "pairwise":
                results = service.win_rate_results(workspace, plans, config.group_by, config.confidence)
                data["win_rates"] = results
                markdown = report.win_rates_markdown(results, trust, where)
                report.plot_win_rates(results, out / "judge_win_rates.png", trust=trust)
            else:
                results = service.rubric_results(
                    workspace, rubric_jobs, config.confidence, config.bootstrap_resamples
                )
                data["rubric"] = results
                markdown = "# Judge rubric scores\n\n" + f"Images: {where}. Judge: {trust}.\n\n" + "\n".join(
                    f"- {s}: mean {r['criteria'].get('mean', {}).get('mean', float('nan')):.2f} over {r['n']} captions"
                    for s, r in results.items()
                )  # fmt: skip
            report.write_json(out / "judge.json", data)
            (out / "judge.md").write_text(markdown, encoding="utf-8")
            print(markdown)
            print(f"written: exports/eval/{name}/judge.json (+ judge.md)")
            for updated in section.refresh(workspace.exports_dir, name, card=args.card):
                print(f"updated: {updated}")
        return 0

    return run_stage(body, parser, argv)


def main(argv: Sequence[str] | None = None, prog: str = "python -m eval.judge") -> int:
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "calibrate":
        return calibrate_main(args[1:], f"{prog} calibrate")
    return judge_main(args, prog)
