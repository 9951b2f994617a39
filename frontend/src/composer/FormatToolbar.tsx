// Bold, italic, code, link, quote and lists: Markdown written around the selection (see lib/formatting).
import type { SVGProps } from "react";
import { base } from "../components/Icons";
import type { Format } from "../lib/formatting";

const I = {
  bold: (p: SVGProps<SVGSVGElement>) => (<svg {...base(p)}><path d="M7 5h6a3.5 3.5 0 0 1 0 7H7zM7 12h7a3.5 3.5 0 0 1 0 7H7z" /></svg>),
  italic: (p: SVGProps<SVGSVGElement>) => (<svg {...base(p)}><path d="M19 4h-9M14 20H5M15 4 9 20" /></svg>),
  code: (p: SVGProps<SVGSVGElement>) => (<svg {...base(p)}><path d="m16 18 6-6-6-6M8 6l-6 6 6 6" /></svg>),
  link: (p: SVGProps<SVGSVGElement>) => (<svg {...base(p)}><path d="M10 13a5 5 0 0 0 7.54.54l3-3a5 5 0 0 0-7.07-7.07l-1.72 1.71" /><path d="M14 11a5 5 0 0 0-7.54-.54l-3 3a5 5 0 0 0 7.07 7.07l1.71-1.71" /></svg>),
  quote: (p: SVGProps<SVGSVGElement>) => (<svg {...base(p)}><path d="M3 21c3 0 7-1 7-8V5H3v7h4c0 4-2 6-4 6zM14 21c3 0 7-1 7-8V5h-7v7h4c0 4-2 6-4 6z" /></svg>),
  bullets: (p: SVGProps<SVGSVGElement>) => (<svg {...base(p)}><path d="M9 6h11M9 12h11M9 18h11M4 6h.01M4 12h.01M4 18h.01" /></svg>),
  numbers: (p: SVGProps<SVGSVGElement>) => (<svg {...base(p)}><path d="M10 6h10M10 12h10M10 18h10M4 6h1v4M4 10h2M6 18H4c0-1 2-2 2-3s-1-1.5-2-1" /></svg>),
};

const BUTTONS: { f: Format; label: string; keys?: string }[] = [
  { f: "bold", label: "Bold", keys: "Ctrl+B" },
  { f: "italic", label: "Italic", keys: "Ctrl+I" },
  { f: "code", label: "Code", keys: "Ctrl+E" },
  { f: "link", label: "Link" },
  { f: "quote", label: "Quote" },
  { f: "bullets", label: "Bulleted list" },
  { f: "numbers", label: "Numbered list" },
];

export function FormatToolbar({ onFormat }: { onFormat: (f: Format) => void }) {
  return (
    <div className="format-toolbar" role="toolbar" aria-label="Formatting" data-testid="format-toolbar">
      {BUTTONS.map(({ f, label, keys }) => {
        const Icon = I[f];
        return (
          <button key={f} type="button" className="icon-btn sm" aria-label={label} title={keys ? `${label} (${keys})` : label}
            // keep the selection in the text
            onMouseDown={(e) => e.preventDefault()}
            onClick={() => onFormat(f)}
          >
            <Icon width={16} height={16} />
          </button>
        );
      })}
    </div>
  );
}
