from cocalc_k8s.cli import main

main()
