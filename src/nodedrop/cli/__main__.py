from nodedrop.cli.main import main

main()
