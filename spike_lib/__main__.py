from spike_lib.cli import main

raise SystemExit(main())
