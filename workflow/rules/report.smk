localrules:
    make_report,


rule make_report:
    input:
        all_metrics(),
    output:
        tidy=f"{RESULTS}/report/metrics_tidy.csv",
        tables=report_tables(),
        figures=report_figures(),
    params:
        tier=TIER.tier,
    log:
        f"{RESULTS}/logs/make_report.log",
    conda:
        ENVIRONMENT
    shell:
        "frugaldiff report"
        " --metrics {input}"
        " --tier {params.tier}"
        " --out-dir $(dirname {output.tidy})"
        " > {log} 2>&1"
