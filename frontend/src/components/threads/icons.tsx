import type { SVGProps } from "react";
import { base } from "../Icons";

export const IconThread = (p: SVGProps<SVGSVGElement>) => (
  <svg {...base(p)}>
    <path d="M21 11.5a8.4 8.4 0 0 1-9 8.4 9 9 0 0 1-4-1l-5 1.6 1.6-4.6a8 8 0 0 1-1.1-4.4A8.4 8.4 0 0 1 12 3a8.4 8.4 0 0 1 9 8.5z" />
    <path d="M8 10h8M8 14h5" />
  </svg>
);
