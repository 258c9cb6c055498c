from sabio.cli.main import main

raise SystemExit(main())
