from nodedrop.api.main import main

main()
