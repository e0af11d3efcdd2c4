from bench.reports.run import main

main()
