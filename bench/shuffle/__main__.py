from bench.shuffle.runner import main

main()
