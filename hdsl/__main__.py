from hdsl.cli import main

main()
