from nodedrop.scheduler.main import main

main()
