import type { SVGProps } from "react";

import { base } from "../components/Icons";


export const IconVideo = (p: SVGProps<SVGSVGElement>) => (<svg {...base(p)}><path d="m16 13 5.2 3.5a.5.5 0 0 0 .8-.4V7.9a.5.5 0 0 0-.8-.4L16 11" /><rect x="2" y="6" width="14" height="12" rx="2" /></svg>);
export const IconVideoOff = (p: SVGProps<SVGSVGElement>) => (<svg {...base(p)}><path d="M10.7 6H14a2 2 0 0 1 2 2v3.3l1 1 5-3.5v7.4" /><path d="M16 16a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2h2" /><path d="m2 2 20 20" /></svg>);
export const IconMic = (p: SVGProps<SVGSVGElement>) => (<svg {...base(p)}><rect x="9" y="2" width="6" height="12" rx="3" /><path d="M19 10v1a7 7 0 0 1-14 0v-1M12 18v4" /></svg>);
export const IconMicOff = (p: SVGProps<SVGSVGElement>) => (<svg {...base(p)}><path d="m2 2 20 20" /><path d="M18.9 13.4A7 7 0 0 0 19 12v-2M5 10v2a7 7 0 0 0 12 5M15 9.3V5a3 3 0 0 0-5.7-1.3M9 9v3a3 3 0 0 0 5.1 2.1M12 19v3" /></svg>);
export const IconPhoneOff = (p: SVGProps<SVGSVGElement>) => (<svg {...base(p)}><path d="M10.7 13.3a16 16 0 0 0 3.4 2.6l1.3-1.3a2 2 0 0 1 2.1-.4c.8.3 1.7.5 2.6.6A2 2 0 0 1 22 16.9v3a2 2 0 0 1-2.2 2A19.8 19.8 0 0 1 2.1 4.2 2 2 0 0 1 4.1 2h3a2 2 0 0 1 2 1.7c.1.9.3 1.8.6 2.6a2 2 0 0 1-.5 2.1L8 9.7" /><path d="M22 2 2 22" /></svg>);
