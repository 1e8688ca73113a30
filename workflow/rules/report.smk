localrules:
    make_report,


rule make_report:
    input:
        metrics_of_study,
    output:
        tidy=f"{RESULTS}/report/{{study}}/metrics_tidy.csv",
        tables=multiext(
            f"{RESULTS}/report/{{study}}/tables/fid_over_training", ".csv", ".md", ".tex"
        ),
        summary=multiext(f"{RESULTS}/report/{{study}}/tables/summary", ".csv", ".md", ".tex"),
        figures=multiext(f"{RESULTS}/report/{{study}}/figures/fid_vs_iteration", ".png", ".pdf"),
    params:
        tier=TIER.tier,
    log:
        f"{RESULTS}/logs/make_report/{{study}}.log",
    conda:
        ENVIRONMENT
    shell:
        "frugaldiff report"
        " --metrics {input}"
        " --tier {params.tier}"
        " --study {wildcards.study}"
        " --out-dir $(dirname {output.tidy})"
        " > {log} 2>&1"
