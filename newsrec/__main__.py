from newsrec.cli import main

raise SystemExit(main())
