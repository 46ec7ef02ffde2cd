// omega-web: the little script the pages need. No inline scripts anywhere (the CSP forbids them).
"use strict";
