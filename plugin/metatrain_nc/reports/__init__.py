"""Reports of the package's commands, in Markdown and one offline HTML file: a
report is a list of blocks (headings, paragraphs, tables, figures, chemiscope
viewers: :mod:`.render`), rendered by the same code for ``mtt-nc compare`` and
``mtt-nc distill``; the viewers embed their datasets and the chemiscope script
(:mod:`.viewer`)."""
