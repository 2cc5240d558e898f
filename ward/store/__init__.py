"""ward.store"""
