from imgan.cli import main

main()
