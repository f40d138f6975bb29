"""Analysis of results: Pareto fronts, charts, the platform study, deployment search, terminal tables."""

from dse._lazy import lazy_exports

_EXPORTS = {
    "run_curve_study": "_curves",
    "DesignKnob": "_design",
    "always": "_design",
    "design": "_design",
    "parse_knobs": "_design",
    "random_search": "_design",
    "requirements": "_requirements",
    "write_report": "_report",
    "write_answer_page": "_report",
    "curves_dataset": "_report",
    "ANSWER_HEADER": "_headline",
    "Question": "_headline",
    "Variant": "_headline",
    "answer": "_headline",
    "answer_rows": "_headline",
    "plot_curves": "_plots",
    "text_overlaps": "_plots",
    "with_sets": "_headline",
    "pareto_mask": "_pareto",
    "pareto_table": "_pareto",
    "store_pareto": "_pareto",
    "write_front": "_pareto",
    "store_points": "_pareto",
    "store_summary": "_pareto",
    "design_levels": "_report",
    "check_queueing": "_queueing",
    "OBJECTIVES": "_plan",
    "Slo": "_plan",
    "plan": "_plan",
    "throughput_curve": "_plan",
    "run_platform_study": "_platforms",
    "plot_store": "_plots",
    "save_figure": "_plots",
    "sensitivities": "_plots",
    "fmt": "_table",
    "render": "_table",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
