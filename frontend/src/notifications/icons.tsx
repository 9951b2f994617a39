import type { SVGProps } from "react";
import { base } from "../components/Icons";

export const IconBell = (p: SVGProps<SVGSVGElement>) => (<svg {...base(p)}><path d="M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9" /><path d="M13.73 21a2 2 0 0 1-3.46 0" /></svg>);
export const IconBellOff = (p: SVGProps<SVGSVGElement>) => (<svg {...base(p)}><path d="M13.73 21a2 2 0 0 1-3.46 0M18.63 13A17.9 17.9 0 0 1 18 8M6.26 6.26A5.86 5.86 0 0 0 6 8c0 7-3 9-3 9h14M18 8a6 6 0 0 0-9.33-5M1 1l22 22" /></svg>);
