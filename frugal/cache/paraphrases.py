"""Pairs of texts that mean the same and pairs that differ but share most words, for choosing the
semantic cache's similarity threshold (``bench/semantic_threshold.py``, the semantic tests).

A pair is ``(a, b, same)``. ``same`` pairs are paraphrases: synonyms, reorderings, another
phrasing of the same request, casing and punctuation. The other pairs would need different
answers though they share most words: another object or place, the opposite action, a negation,
a swapped direction or order ("from Paris to London" / "from London to Paris"), another number.
A semantic hit on one of those serves a wrong answer, so they weigh more than a missed paraphrase.
Written by hand for this purpose; customer-support questions dominate, with general knowledge,
programming and assistant commands mixed in.
"""

from __future__ import annotations

Pair = tuple[str, str, bool]  # (a, b, same meaning)

# same meaning: another phrasing of the same request
REPHRASED: tuple[Pair, ...] = (
    ("How do I reset my password?", "What's the way to reset my password?", True),
    ("How can I change my email address?", "How do I update my email address?", True),
    ("Where is my order?", "Can you tell me where my order is?", True),
    ("Cancel my subscription.", "I want to cancel my subscription.", True),
    ("What are your opening hours?", "When are you open?", True),
    ("How do I delete my account?", "How can I remove my account?", True),
    ("What is the capital of France?", "Which city is the capital of France?", True),
    ("How many calories are in an apple?", "How many calories does an apple have?", True),
    ("Can I get a refund?", "Is it possible to get my money back?", True),
    ("How do I contact customer support?", "How can I reach customer service?", True),
    ("What's the weather like in Berlin today?", "How is the weather in Berlin today?", True),
    (
        "How do I install Python on Windows?",
        "What are the steps to install Python on Windows?",
        True,
    ),
    ("Is shipping free?", "Do you offer free shipping?", True),
    ("How long does shipping take?", "How many days does delivery take?", True),
    ("What payment methods do you accept?", "Which ways of paying do you accept?", True),
    ("Can I change my delivery address?", "Is it possible to update my shipping address?", True),
    ("How do I turn on dark mode?", "How can I enable dark mode?", True),
    ("Why is my internet so slow?", "Why is my internet connection slow?", True),
    ("What time is it in Tokyo?", "What's the current time in Tokyo?", True),
    ("How do I boil an egg?", "What's the way to boil an egg?", True),
    ("Translate 'hello' into Spanish.", "How do you say 'hello' in Spanish?", True),
    ("Who wrote Pride and Prejudice?", "Who is the author of Pride and Prejudice?", True),
    ("What does HTTP stand for?", "What is HTTP short for?", True),
    ("How do I sort a list in Python?", "How can I sort a Python list?", True),
    ("My package arrived damaged.", "The parcel I received was broken.", True),
    ("How do I unsubscribe from your emails?", "How can I stop getting your emails?", True),
    ("What is your return policy?", "How do returns work?", True),
    ("I forgot my password.", "I can't remember my password.", True),
    ("How do I upgrade my plan?", "How can I upgrade to a higher plan?", True),
    ("Do you ship internationally?", "Can you deliver to other countries?", True),
    ("How tall is Mount Everest?", "What is the height of Mount Everest?", True),
    ("When was the Eiffel Tower built?", "In what year was the Eiffel Tower constructed?", True),
    ("What's the best way to learn French?", "How should I go about learning French?", True),
    ("Where can I see my invoices?", "Where are my invoices?", True),
    ("How do I add a user to my team?", "How can I invite someone to my team?", True),
    ("The app keeps crashing.", "The app crashes all the time.", True),
    ("How much does the premium plan cost?", "What is the price of the premium plan?", True),
    ("Can I pay with PayPal?", "Do you accept PayPal?", True),
    ("How do I export my data?", "How can I download all my data?", True),
    ("What is machine learning?", "Can you explain what machine learning is?", True),
    (
        "How do I convert Celsius to Fahrenheit?",
        "How to convert from Celsius into Fahrenheit?",
        True,
    ),
    ("Is the restaurant open on Sundays?", "Does the restaurant open on Sunday?", True),
    ("How do I make pancakes?", "What's a recipe for pancakes?", True),
    ("Give me a synonym for happy.", "What is another word for happy?", True),
    (
        "How far is the moon from Earth?",
        "What is the distance between the Earth and the moon?",
        True,
    ),
    ("How do I change my profile picture?", "How can I update my avatar?", True),
    ("Why was my card declined?", "Why did my card get declined?", True),
    ("How do I enable two-factor authentication?", "How do I turn on 2FA?", True),
    ("What's the phone number for support?", "What number do I call for support?", True),
    ("Please summarize this article.", "Can you give me a summary of this article?", True),
    ("How do I connect to the VPN?", "How can I connect to our VPN?", True),
    ("How many ounces are in a cup?", "How many ounces does a cup hold?", True),
    ("How do I cancel my order?", "I'd like to cancel my order.", True),
    ("Track my order.", "Where can I track my order?", True),
    ("Show me my recent orders.", "What did I order recently?", True),
    ("Where is the nearest train station?", "What's the closest train station?", True),
    ("How do I print a PDF?", "How can I print a PDF file?", True),
    ("Tell me a joke.", "Can you tell me a joke?", True),
    ("How do I clear my browser cache?", "How can I empty the cache in my browser?", True),
    ("What is the dollar to euro exchange rate?", "How many euros is one dollar worth?", True),
    ("My account has been locked.", "I am locked out of my account.", True),
    ("How do I change my username?", "Can I change my user name?", True),
    ("Can I speak to a human?", "I want to talk to a real person.", True),
    ("What are the symptoms of the flu?", "What symptoms does the flu cause?", True),
    ("How do I get a refund for my ticket?", "How can I get my ticket refunded?", True),
    ("Is this product in stock?", "Is this item available right now?", True),
    ("How long is the warranty?", "What is the warranty period?", True),
    ("Recommend a good book.", "Can you suggest a good book to read?", True),
    ("How do I split a string in JavaScript?", "How can I split a JavaScript string?", True),
    ("What is the boiling point of water?", "At what temperature does water boil?", True),
    ("How do I log out?", "How can I sign out?", True),
    ("Where do I enter a promo code?", "Where can I apply a discount code?", True),
    ("How do I change the language of the app?", "How can I switch the app's language?", True),
    ("Do you have vegetarian options?", "Are there vegetarian dishes on the menu?", True),
    ("What's the wifi password?", "What is the password for the wifi?", True),
    ("How old is the universe?", "What is the age of the universe?", True),
    ("How do I merge two PDFs?", "How can I combine two PDF files?", True),
    ("Can I bring my dog?", "Are dogs allowed?", True),
)

# same meaning: reordered, or only casing and punctuation differ
REORDERED: tuple[Pair, ...] = (
    ("In Python, how do I read a file?", "How do I read a file in Python?", True),
    ("On Sundays, is the pharmacy open?", "Is the pharmacy open on Sundays?", True),
    ("Tomorrow, will it rain in Paris?", "Will it rain in Paris tomorrow?", True),
    ("For my laptop, where can I buy a charger?", "Where can I buy a charger for my laptop?", True),
    ("how do i reset my password", "How do I reset my password?", True),
    ("where is my refund", "Where is my refund?", True),
    ("WHAT IS YOUR RETURN POLICY", "What is your return policy?", True),
)

# different meaning: another object, place or time
OTHER_OBJECT: tuple[Pair, ...] = (
    ("How do I reset my password?", "How do I reset my username?", False),
    ("What is the capital of France?", "What is the capital of Spain?", False),
    ("How many calories are in an apple?", "How many calories are in a banana?", False),
    (
        "What's the weather like in Berlin today?",
        "What's the weather like in Berlin tomorrow?",
        False,
    ),
    ("How do I install Python on Windows?", "How do I install Python on Mac?", False),
    ("Is shipping free?", "Is shipping insured?", False),
    ("What time is it in Tokyo?", "What time is it in London?", False),
    ("How do I boil an egg?", "How do I fry an egg?", False),
    ("Translate 'hello' into Spanish.", "Translate 'hello' into German.", False),
    ("Who wrote Pride and Prejudice?", "Who wrote War and Peace?", False),
    ("How do I sort a list in Python?", "How do I reverse a list in Python?", False),
    ("Do you ship to Canada?", "Do you ship to Mexico?", False),
    ("How tall is Mount Everest?", "How tall is Mount Kilimanjaro?", False),
    ("How much does the premium plan cost?", "How much does the basic plan cost?", False),
    ("Can I pay with PayPal?", "Can I pay with Bitcoin?", False),
    ("Is the restaurant open on Sundays?", "Is the restaurant open on Mondays?", False),
    ("How do I make pancakes?", "How do I make waffles?", False),
    ("How far is the moon from Earth?", "How far is the sun from Earth?", False),
    ("How many ounces are in a cup?", "How many ounces are in a pint?", False),
    ("Where is the nearest train station?", "Where is the nearest bus station?", False),
    ("How do I print a PDF?", "How do I edit a PDF?", False),
    ("Tell me a joke.", "Tell me a story.", False),
    ("How do I clear my browser cache?", "How do I clear my browser history?", False),
    ("What are the symptoms of the flu?", "What are the symptoms of a cold?", False),
    ("Is this product in stock?", "Is this product on sale?", False),
    ("How long is the warranty?", "How long is the free trial?", False),
    ("How do I split a string in JavaScript?", "How do I split a string in Python?", False),
    ("What is the boiling point of water?", "What is the freezing point of water?", False),
    ("Do you have vegetarian options?", "Do you have gluten-free options?", False),
    ("How old is the universe?", "How old is the Earth?", False),
    ("How do I merge two PDFs?", "How do I merge two Word documents?", False),
    ("Can I bring my dog?", "Can I bring my cat?", False),
    ("Does this phone support 5G?", "Does this phone support wireless charging?", False),
    ("Is it safe to eat raw chicken?", "Is it safe to eat raw fish?", False),
    ("What's the population of China?", "What's the population of India?", False),
    ("Is the museum free for children?", "Is the museum free for seniors?", False),
    ("How do I change my password?", "How do I change my email address?", False),
    ("Where can I find my invoices?", "Where can I find my contracts?", False),
    ("How do I get a refund for my ticket?", "How do I change the date of my ticket?", False),
    ("Recommend a good book.", "Recommend a good movie.", False),
    ("How do I change the language of the app?", "How do I change the currency of the app?", False),
    ("What's the wifi password?", "What's the wifi network name?", False),
    ("Who won the World Cup in 2018?", "Who won the World Cup in 2022?", False),
    (
        "How do I remove a virus from my laptop?",
        "How do I remove the battery from my laptop?",
        False,
    ),
    ("Send the report to Alice.", "Send the report to Bob.", False),
    ("Move the meeting to Tuesday.", "Move the meeting to Thursday.", False),
    ("What is the speed of light?", "What is the speed of sound?", False),
    ("Where is my refund?", "Where is my replacement?", False),
    ("Will it rain tomorrow?", "Will it snow tomorrow?", False),
    ("Is the store open today?", "Was the store open yesterday?", False),
    ("Book a table for two at 7pm.", "Book a table for four at 9pm.", False),
    ("Set an alarm for 6 am.", "Set an alarm for 6 pm.", False),
    (
        "What's the exchange rate from dollars to euros?",
        "What's the exchange rate from euros to yen?",
        False,
    ),
)

# different meaning: the opposite action
OPPOSITE: tuple[Pair, ...] = (
    ("Cancel my order.", "Track my order.", False),
    ("How do I delete my account?", "How do I create an account?", False),
    ("How do I turn on dark mode?", "How do I turn off dark mode?", False),
    ("How do I upgrade my plan?", "How do I downgrade my plan?", False),
    ("How do I add a user to my team?", "How do I remove a user from my team?", False),
    ("How do I export my data?", "How do I import my data?", False),
    ("Give me a synonym for happy.", "Give me an antonym for happy.", False),
    (
        "How do I enable two-factor authentication?",
        "How do I disable two-factor authentication?",
        False,
    ),
    ("How do I connect to the VPN?", "How do I disconnect from the VPN?", False),
    ("How do I log in?", "How do I log out?", False),
    ("Increase the volume.", "Decrease the volume.", False),
    ("How do I open a bank account?", "How do I close a bank account?", False),
    ("How do I pause my subscription?", "How do I resume my subscription?", False),
    ("How do I unblock a contact?", "How do I block a contact?", False),
    ("How do I add money to my wallet?", "How do I withdraw money from my wallet?", False),
    ("My account has been locked.", "My account has been hacked.", False),
    ("The package arrived on time.", "The package arrived late.", False),
    ("My order is missing an item.", "My order has an extra item.", False),
    ("Why is my battery draining fast?", "Why is my battery charging slowly?", False),
    ("Is it better to buy a house?", "Is it better to rent a house?", False),
)

# different meaning: a negation
NEGATED: tuple[Pair, ...] = (
    ("I want to cancel my subscription.", "I don't want to cancel my subscription.", False),
    ("The app works on Android.", "The app doesn't work on Android.", False),
    ("I can log in.", "I can't log in.", False),
    ("I was charged twice.", "I was not charged.", False),
    ("The hotel allows pets.", "The hotel does not allow pets.", False),
)

# different meaning: the same words in another order or direction
SWAPPED: tuple[Pair, ...] = (
    ("How do I convert Celsius to Fahrenheit?", "How do I convert Fahrenheit to Celsius?", False),
    ("Flights from Paris to London", "Flights from London to Paris", False),
    ("The dog bit the man.", "The man bit the dog.", False),
    ("Transfer $100 from savings to checking.", "Transfer $100 from checking to savings.", False),
    ("Translate this from English to French.", "Translate this from French to English.", False),
)

# The pairs by kind, for the breakdown in bench/semantic_threshold.py.
GROUPS: dict[str, tuple[Pair, ...]] = {
    "same: rephrased": REPHRASED,
    "same: reordered or recased": REORDERED,
    "different: another object, place or time": OTHER_OBJECT,
    "different: the opposite action": OPPOSITE,
    "different: negated": NEGATED,
    "different: order or direction swapped": SWAPPED,
}

PARAPHRASES: tuple[Pair, ...] = REPHRASED + REORDERED + OTHER_OBJECT + OPPOSITE + NEGATED + SWAPPED
