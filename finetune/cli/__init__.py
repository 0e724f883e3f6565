"""`python -m finetune`: the commands, the rehearsal and its local Bedrock fake. Never in Lambda."""
