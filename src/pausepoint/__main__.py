from pausepoint.cli import main

main()
