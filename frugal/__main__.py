from frugal.cli import main

main()
