import { geowatchTest } from "../../vitest.shared.mjs";
export default geowatchTest({ include: ["test/**/*.test.mjs"] });
