localrules:
    make_report,
    make_frontier,


rule make_report:
    input:
        metrics=metrics_of_study,
        summaries=summaries_of_study,
        floor=[FLOOR] if TIER.evaluation.floor else [],
    output:
        tidy=f"{RESULTS}/report/{{study}}/metrics_tidy.csv",
        tables=report(
            directory(f"{RESULTS}/report/{{study}}/tables"),
            patterns=["{name}.csv"],
            caption="../report/study_tables.rst",
            category="{study}",
            subcategory="tables",
        ),
        figures=report(
            directory(f"{RESULTS}/report/{{study}}/figures"),
            patterns=["{name}.png"],
            caption="../report/study_figures.rst",
            category="{study}",
            subcategory="figures",
        ),
    params:
        tier=TIER.tier,
        floor=f"--floor {FLOOR}" if TIER.evaluation.floor else "",
    log:
        f"{RESULTS}/logs/make_report/{{study}}.log",
    conda:
        ENVIRONMENT
    shell:
        "frugaldiff report"
        " --metrics {input.metrics}"
        " --summaries {input.summaries}"
        " --tier {params.tier}"
        " --study {wildcards.study}"
        " {params.floor}"
        " --out-dir $(dirname {output.tidy})"
        " > {log} 2>&1"


rule make_frontier:
    input:
        metrics=[path for run in TIER.runs for path in metrics_of(run)],
        summaries=summaries_of_runs(list(TIER.runs)),
    output:
        tables=report(
            directory(f"{RESULTS}/frontier/tables"),
            patterns=["{name}.csv"],
            caption="../report/frontier.rst",
            category="frontier",
            subcategory="tables",
        ),
        figures=report(
            directory(f"{RESULTS}/frontier/figures"),
            patterns=["{name}.png"],
            caption="../report/frontier.rst",
            category="frontier",
            subcategory="figures",
        ),
    params:
        tier=TIER.tier,
    log:
        f"{RESULTS}/logs/make_frontier.log",
    conda:
        ENVIRONMENT
    shell:
        "frugaldiff frontier"
        " --metrics {input.metrics}"
        " --summaries {input.summaries}"
        " --tier {params.tier}"
        " --out-dir $(dirname {output.tables})"
        " > {log} 2>&1"
