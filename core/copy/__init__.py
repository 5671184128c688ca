"""Copy studio logic: channels and limits as data, prompts, repair, scoring, variants and export.

    channels   ChannelSpec / FieldSpec per ad format, tones, segment persona
    facts      a product's own fields and attributes (ProductFacts), loaded in one query
    prompts    chat messages: instructions, grounded few-shot examples, the product as quoted data
    limits     model output -> fields within limits (parse, trim, fallback), and the compliance check
    scoring    faithfulness, coverage, readability, banned words, distinct-2, self-BLEU, overall rank
    variants   GenerationRequest, Variant, generate_variants, and the copy_variants table
    export     Google Ads Editor CSV and JSON of approved variants

Submodules are imported where used; importing this package loads nothing heavy.
"""
