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
        tables=directory(f"{RESULTS}/report/{{study}}/tables"),
        figures=directory(f"{RESULTS}/report/{{study}}/figures"),
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
        tables=directory(f"{RESULTS}/frontier/tables"),
        figures=directory(f"{RESULTS}/frontier/figures"),
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
