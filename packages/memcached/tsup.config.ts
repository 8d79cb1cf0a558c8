import { geowatchBuild } from "../../tsup.shared.mjs";
export default geowatchBuild();
